"""Stoker as a drop-in for the hosted APIs: the official `openai` and `anthropic` SDKs,
unchanged, against a real `stoker serve` with the tiny model, asserting on what the SDKs
return (their types, exceptions and fields), not on raw JSON alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import yaml

from tests.e2e.conftest import E2E_OPERATOR_TOKEN, Server, free_port

pytestmark = pytest.mark.timeout(300)

TOKEN = "drop-in-team-token"
#: A team whose synchronous calls go to the batch tier unless they ask otherwise.
EVALS_TOKEN = "drop-in-evals-token"
PROMPT = "Q: what is 2+2?"
#: A chat prompt the tiny model answers with a text that varies (most repeat one token).
CHAT_PROMPT = "Name three colours."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("drop-in")
    port = free_port()
    config = {"port": port, "data_dir": str(root),
              "models": {"tiny-llama": {"path": str(tiny_model_dir)}},
              "batching": {"max_batch_size": 8, "max_wait_ms": 20},
              "teams": {"app": {"token": TOKEN},
                        "evals": {"token": EVALS_TOKEN, "sync_tier": "batch",
                                  "tiers": ["batch", "smoke", "online"]},
                        "pipeline": {"token": "drop-in-pipeline", "tiers": ["batch"]}},
              "operator_token": E2E_OPERATOR_TOKEN,
              "runner_token": "drop-in-runner-token"}
    (root / "stoker.yaml").write_text(yaml.safe_dump(config))
    made = Server(root, root / "stoker.yaml", port, operator_token=E2E_OPERATOR_TOKEN)
    made.start(runners=1)
    yield made
    made.kill_everything()


def oai(server: Server, token: str = TOKEN) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=token, max_retries=0,
                         timeout=120)


def claude(server: Server, token: str = TOKEN) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key=token, max_retries=0, timeout=120)


def two_stops(text: str) -> tuple[str, str]:
    """Two strings of ``text``: one that occurs early, and one whose first occurrence is
    later."""
    early = text[1:3]
    late = next(text[i:i + 2] for i in range(len(text) - 1)
                if text.find(text[i:i + 2]) > text.find(early) + 1)
    return early, late


def test_of_several_stops_the_earliest_in_the_text_ends_it(server: Server) -> None:
    client = oai(server)
    free = client.completions.create(model="tiny-llama", prompt=PROMPT, max_tokens=24,
                                     temperature=0).choices[0].text
    early, late = two_stops(free)
    cut = client.completions.create(model="tiny-llama", prompt=PROMPT, max_tokens=24,
                                    temperature=0, stop=[late, early]).choices[0]
    assert cut.finish_reason == "stop"
    assert cut.text == free[: free.find(early)]
    assert early not in cut.text
    assert late not in cut.text


def test_anthropic_names_the_stop_sequence_that_ended_the_message(server: Server) -> None:
    free = oai(server).chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": CHAT_PROMPT}], max_tokens=24,
        temperature=0).choices[0].message.content or ""
    early, late = two_stops(free)
    client = claude(server)
    # This SDK has no temperature parameter any more; Stoker still takes one (greedy here).
    ask = {"model": "tiny-llama", "max_tokens": 24, "extra_body": {"temperature": 0},
           "messages": [{"role": "user", "content": CHAT_PROMPT}],
           "stop_sequences": [late, early]}
    message = client.messages.create(**ask)  # type: ignore[call-overload]
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", early)
    assert message.content[0].text == free[: free.find(early)]
    with client.messages.stream(**ask) as stream:
        streamed = stream.get_final_message()
    assert (streamed.stop_reason, streamed.stop_sequence) == ("stop_sequence", early)
    assert streamed.content[0].text == message.content[0].text


def test_invalid_requests_are_400s_naming_the_field(server: Server) -> None:
    client = oai(server)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="tiny-llama", max_tokens=4,
                                       messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"frobnicate": True})
    assert (refused.value.param, refused.value.type) == ("frobnicate", "invalid_request_error")
    with pytest.raises(openai.BadRequestError, match="logprobs") as refused:
        client.chat.completions.create(model="tiny-llama", max_tokens=4, logprobs=True,
                                       messages=[{"role": "user", "content": "hi"}])
    assert refused.value.param == "logprobs"
    with pytest.raises(anthropic.BadRequestError, match="top_k") as bad:
        claude(server).messages.create(model="tiny-llama", max_tokens=4,
                                       messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"top_k": 5})
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.AuthenticationError):
        claude(server, "wrong-token").messages.create(
            model="tiny-llama", max_tokens=4, messages=[{"role": "user", "content": "hi"}])


def test_a_prompt_past_the_context_is_context_length_exceeded(server: Server) -> None:
    with pytest.raises(openai.BadRequestError, match="maximum context length is") as refused:
        oai(server).chat.completions.create(
            model="tiny-llama", max_tokens=64,
            messages=[{"role": "user", "content": "word " * 3000}])
    assert (refused.value.code, refused.value.param) == ("context_length_exceeded", "messages")


def test_nulls_mean_defaults_and_neutral_values_pass(server: Server) -> None:
    done = oai(server).chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "hi"}], max_tokens=4,
        temperature=None, top_p=None, stop=None, seed=None, presence_penalty=0,
        frequency_penalty=None, logprobs=False, user="someone", metadata={"run": "1"},
        store=False)
    assert done.choices[0].finish_reason in ("stop", "length")


def test_every_response_names_its_request(server: Server) -> None:
    answer = oai(server).completions.create(model="tiny-llama", prompt="hi", max_tokens=2)
    assert answer._request_id is not None
    assert answer._request_id.startswith("req_")
    message = claude(server).messages.create(model="tiny-llama", max_tokens=2,
                                             messages=[{"role": "user", "content": "hi"}])
    assert message._request_id is not None
    assert message._request_id.startswith("req_")
    with pytest.raises(openai.NotFoundError) as missing:
        oai(server).models.retrieve("gpt-4o")
    assert missing.value.request_id is not None
    for path in ("/healthz", "/api/nothing-here"):
        assert httpx.get(server.url + path, timeout=10).headers["x-request-id"].startswith("req_")
    # An id a proxy gave the request is kept; one that could forge log text is replaced.
    kept = httpx.get(server.url + "/healthz", headers={"x-request-id": "lb-42"}, timeout=10)
    assert kept.headers["x-request-id"] == "lb-42"
    forged = httpx.get(server.url + "/healthz", headers={"x-request-id": "a b\tc"}, timeout=10)
    assert forged.headers["x-request-id"].startswith("req_")


def test_the_default_model_is_retrieved_as_the_model_it_stands_for(server: Server) -> None:
    assert oai(server).models.retrieve("default").id == "tiny-llama"


def test_stokers_own_routes_keep_their_shape(server: Server) -> None:
    # What `stoker` and the dashboard read: a 422 for invalid values, with its status.
    r = httpx.post(server.url + "/api/jobs", json={"requests": []},
                   headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 422
    assert r.json()["error"]["status"] == 422


def tiers_of_jobs(server: Server, token: str) -> list[str]:
    r = httpx.get(server.url + "/api/jobs", headers={"Authorization": f"Bearer {token}"},
                  timeout=10)
    return [job["tier"] for job in r.json()["data"]]


def test_synchronous_calls_take_the_tier_the_team_or_call_chooses(server: Server) -> None:
    ask = {"model": "tiny-llama", "messages": [{"role": "user", "content": "tiers"}],
           "max_tokens": 2}
    client = oai(server, EVALS_TOKEN)
    client.chat.completions.create(**ask)  # type: ignore[call-overload]
    assert tiers_of_jobs(server, EVALS_TOKEN) == ["batch"]  # the team's default
    client.chat.completions.create(**ask, service_tier="priority")  # type: ignore[call-overload]
    client.chat.completions.create(**ask, extra_headers={"X-Stoker-Tier": "smoke"})  # type: ignore[call-overload]
    claude(server, EVALS_TOKEN).messages.create(
        model="tiny-llama", max_tokens=2, messages=[{"role": "user", "content": "tiers"}])
    assert sorted(tiers_of_jobs(server, EVALS_TOKEN)) == ["batch", "batch", "online", "smoke"]
    oai(server).chat.completions.create(**ask, service_tier="flex")  # type: ignore[call-overload]
    assert "batch" in tiers_of_jobs(server, TOKEN)
    with pytest.raises(openai.PermissionDeniedError, match="may not submit to tier"):
        oai(server, "drop-in-pipeline").chat.completions.create(**ask)  # type: ignore[call-overload]
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(**ask, service_tier="scale")  # type: ignore[call-overload]
    assert refused.value.param == "service_tier"
