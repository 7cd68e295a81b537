"""Stoker as a drop-in for the hosted APIs: the official `openai` and `anthropic` SDKs,
unchanged, against a real `stoker serve` with the tiny model, asserting on what the SDKs
return (their types, exceptions and fields), not on raw JSON alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import yaml

from tests.e2e.conftest import E2E_OPERATOR_TOKEN, Server, free_port, wait_until

pytestmark = pytest.mark.timeout(300)

TOKEN = "drop-in-team-token"
#: A team whose synchronous calls go to the batch tier unless they ask otherwise.
EVALS_TOKEN = "drop-in-evals-token"
#: A team with rate quotas (two requests a minute).
QUOTA_TOKEN = "drop-in-quota-token"
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
                        "pipeline": {"token": "drop-in-pipeline", "tiers": ["batch"]},
                        "quota": {"token": QUOTA_TOKEN, "quotas": {
                            "requests_per_minute": 2, "tokens_per_day": 100_000}}},
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


@pytest.mark.conformance(client="openai",
                          feature="several stop strings: the earliest match ends the text")
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


@pytest.mark.conformance(client="anthropic",
                          feature="stop_reason stop_sequence, with stop_sequence set")
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


@pytest.mark.conformance(client="openai",
                          feature="BadRequestError with param; AuthenticationError")
def test_invalid_requests_are_400s_naming_the_field(server: Server) -> None:
    client = oai(server)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="tiny-llama", max_tokens=4,
                                       messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"frobnicate": True})
    assert (refused.value.param, refused.value.type) == ("frobnicate", "invalid_request_error")
    with pytest.raises(openai.BadRequestError, match="json_schema") as refused:
        client.chat.completions.create(model="tiny-llama", max_tokens=4,
                                       response_format={"type": "json_schema"},  # type: ignore[typeddict-item]
                                       messages=[{"role": "user", "content": "hi"}])
    assert refused.value.param == "response_format"
    with pytest.raises(anthropic.BadRequestError, match="top_k") as bad:
        claude(server).messages.create(model="tiny-llama", max_tokens=4,
                                       messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"top_k": 5})
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.AuthenticationError):
        claude(server, "wrong-token").messages.create(
            model="tiny-llama", max_tokens=4, messages=[{"role": "user", "content": "hi"}])


@pytest.mark.conformance(client="openai", feature="response_format: json_object and json_schema")
def test_json_mode_and_json_schemas_constrain_the_answer(server: Server) -> None:
    # The tiny model is random: only the constraint makes its answer JSON. Given room to
    # finish, a boolean-and-enum schema leaves it nothing but a complete, valid object.
    schema = {"type": "object", "required": ["ok", "colour"], "additionalProperties": False,
              "properties": {"ok": {"type": "boolean"},
                             "colour": {"type": "string", "enum": ["red", "green"]}}}
    answer = oai(server).chat.completions.create(
        model="tiny-llama", max_tokens=64, temperature=0,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "verdict", "schema": schema}},
        messages=[{"role": "user", "content": "Is it ok?"}])
    found = json.loads(answer.choices[0].message.content or "")
    assert set(found) == {"ok", "colour"}
    assert isinstance(found["ok"], bool)
    assert found["colour"] in ("red", "green")
    assert answer.choices[0].finish_reason == "stop"
    free = oai(server).chat.completions.create(
        model="tiny-llama", max_tokens=8, temperature=0, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Anything."}])
    assert (free.choices[0].message.content or "").lstrip().startswith("{")
    streamed = oai(server).chat.completions.create(
        model="tiny-llama", max_tokens=64, temperature=0, stream=True,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "verdict", "schema": schema}},
        messages=[{"role": "user", "content": "Is it ok?"}])
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert json.loads(text) == found  # the same constrained answer, streamed


@pytest.mark.conformance(client="openai", feature="context_length_exceeded, in OpenAI's words")
def test_a_prompt_past_the_context_is_context_length_exceeded(server: Server) -> None:
    with pytest.raises(openai.BadRequestError, match="maximum context length is") as refused:
        oai(server).chat.completions.create(
            model="tiny-llama", max_tokens=64,
            messages=[{"role": "user", "content": "word " * 3000}])
    assert (refused.value.code, refused.value.param) == ("context_length_exceeded", "messages")


@pytest.mark.conformance(client="openai", feature="null for any optional field")
def test_nulls_mean_defaults_and_neutral_values_pass(server: Server) -> None:
    done = oai(server).chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "hi"}], max_tokens=4,
        temperature=None, top_p=None, stop=None, seed=None, presence_penalty=0,
        frequency_penalty=None, logprobs=False, user="someone", metadata={"run": "1"},
        store=False)
    assert done.choices[0].finish_reason in ("stop", "length")


@pytest.mark.conformance(client="openai", feature="request_id on every response (and Anthropic's)")
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


@pytest.mark.conformance(client="openai", feature="models.retrieve of default")
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


@pytest.mark.conformance(client="openai", feature="service_tier and X-Stoker-Tier choose the tier")
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


@pytest.mark.conformance(client="openai",
                          feature="several prompts per completion, streamed or not")
def test_several_prompts_get_a_choice_each_in_order(server: Server) -> None:
    client = oai(server)
    prompts = ["Hello", PROMPT, "The quick brown fox"]
    each = [client.completions.create(model="tiny-llama", prompt=p, max_tokens=5,
                                      temperature=0).choices[0].text for p in prompts]
    together = client.completions.create(model="tiny-llama", prompt=prompts, max_tokens=5,
                                         temperature=0)
    assert [c.index for c in together.choices] == [0, 1, 2]
    assert [c.text for c in together.choices] == each
    # Streamed: each prompt's choice arrives under its index, then the usage of all of them.
    streamed: dict[int, str] = {}
    finished: dict[int, str | None] = {}
    usage = None
    for chunk in client.completions.create(model="tiny-llama", prompt=prompts, max_tokens=5,
                                           temperature=0, stream=True,
                                           stream_options={"include_usage": True}):
        usage = chunk.usage or usage
        for choice in chunk.choices:
            streamed[choice.index] = streamed.get(choice.index, "") + choice.text
            finished[choice.index] = choice.finish_reason or finished.get(choice.index)
    assert [streamed[i] for i in range(3)] == each
    assert all(finished[i] in ("stop", "length") for i in range(3))
    assert usage is not None
    assert together.usage is not None
    assert usage.prompt_tokens == together.usage.prompt_tokens


@pytest.mark.conformance(client="openai", feature="token-id prompts, echo, logprobs, max_tokens 0")
def test_log_likelihoods_as_lm_evaluation_harness_asks_for_them(server: Server) -> None:
    # lm-eval's local-completions, tokenized, --batch_size 2: token-id prompts, echo, one
    # completion token, logprobs 1; it reads token_logprobs[context:-1] and top_logprobs.
    client = oai(server)
    contexts = [[5, 17, 42, 99], [7, 8]]
    scored = client.completions.create(model="tiny-llama", prompt=contexts, max_tokens=1,
                                       temperature=0, echo=True, logprobs=1, seed=1234)
    for choice, ids in zip(scored.choices, contexts, strict=True):
        lp = choice.logprobs
        assert lp is not None
        assert lp.token_logprobs is not None
        assert lp.top_logprobs is not None
        assert len(lp.token_logprobs) == len(ids) + 1  # the prompt, then the new token
        assert lp.token_logprobs[0] is None
        assert all(v is not None and v <= 0 for v in lp.token_logprobs[1:])
        greedy = lp.top_logprobs[-1]
        assert greedy is not None
        assert max(greedy, key=lambda t: greedy[t]) == (lp.tokens or [])[-1]
    # Scoring alone: max_tokens 0 with echo gives the prompt's log-probabilities, the same.
    alone = client.completions.create(model="tiny-llama", prompt=contexts[0], max_tokens=0,
                                      echo=True, logprobs=0).choices[0].logprobs
    first = scored.choices[0].logprobs
    assert alone is not None
    assert first is not None
    assert alone.token_logprobs is not None
    assert first.token_logprobs is not None
    assert alone.token_logprobs[0] is None
    assert alone.token_logprobs[1:] == pytest.approx(first.token_logprobs[1:-1], abs=1e-4)


@pytest.mark.conformance(client="openai", feature="streamed echo and logprobs")
def test_streamed_log_likelihoods_match_the_unstreamed(server: Server) -> None:
    client = oai(server)
    ask = {"model": "tiny-llama", "prompt": "The quick brown fox", "max_tokens": 3,
           "temperature": 0, "echo": True, "logprobs": 2}
    whole = client.completions.create(**ask).choices[0]
    chunks = list(client.completions.create(**ask, stream=True))
    texts = "".join(c.choices[0].text for c in chunks if c.choices)
    streamed = [c.choices[0].logprobs for c in chunks if c.choices and c.choices[0].logprobs]
    assert texts == whole.text
    assert texts.startswith("The quick brown fox")  # the echoed prompt comes first
    assert len(streamed) == 1
    assert whole.logprobs is not None
    assert streamed[0].tokens == whole.logprobs.tokens
    assert streamed[0].token_logprobs == pytest.approx(whole.logprobs.token_logprobs)


@pytest.mark.conformance(client="openai", feature="streamed chat logprobs")
def test_chat_logprobs_stream_in_chats_shape(server: Server) -> None:
    ask = {"model": "tiny-llama", "messages": [{"role": "user", "content": CHAT_PROMPT}],
           "max_tokens": 4, "temperature": 0, "logprobs": True, "top_logprobs": 1}
    whole = oai(server).chat.completions.create(**ask).choices[0]
    text, tokens = "", []
    for chunk in oai(server).chat.completions.create(**ask, stream=True):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.logprobs is not None and choice.logprobs.content:
                tokens += [t.token for t in choice.logprobs.content]
    assert text == whole.message.content
    assert whole.logprobs is not None
    assert whole.logprobs.content is not None
    assert tokens == [t.token for t in whole.logprobs.content]


@pytest.mark.conformance(client="openai", feature="chat logprobs and top_logprobs")
def test_chat_logprobs_come_in_chats_shape(server: Server) -> None:
    answer = oai(server).chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": CHAT_PROMPT}], max_tokens=4,
        temperature=0, logprobs=True, top_logprobs=2)
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.content is not None
    assert "".join(t.token for t in logprobs.content) == answer.choices[0].message.content
    for token in logprobs.content:
        assert len(token.top_logprobs) == 2
        assert token.top_logprobs[0].token == token.token
        assert token.bytes == list(token.token.encode("utf-8"))


@pytest.mark.conformance(client="openai", feature="x-ratelimit-* headers; RateLimitError")
def test_rate_limit_headers_come_from_the_teams_quotas(server: Server) -> None:
    client = oai(server, QUOTA_TOKEN)
    ask = {"model": "tiny-llama", "messages": [{"role": "user", "content": "quota"}],
           "max_tokens": 2}
    first = client.chat.completions.with_raw_response.create(**ask)  # type: ignore[call-overload]
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    assert first.headers["x-ratelimit-limit-tokens"] == "100000"
    assert 0 < int(first.headers["x-ratelimit-remaining-tokens"]) <= 100_000
    client.chat.completions.create(**ask)  # type: ignore[call-overload]
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(**ask)  # type: ignore[call-overload]
    headers = limited.value.response.headers
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert int(headers["retry-after"]) >= 1
    # A team without quotas gets none of them.
    plain = oai(server).chat.completions.with_raw_response.create(**ask)  # type: ignore[call-overload]
    assert "x-ratelimit-limit-requests" not in plain.headers


@pytest.mark.conformance(client="anthropic", feature="messages.count_tokens")
def test_count_tokens_counts_what_a_message_would_take(server: Server) -> None:
    client = claude(server)
    messages = [{"role": "user", "content": "How many tokens is this?"}]
    counted = client.messages.count_tokens(model="tiny-llama", messages=messages,  # type: ignore[arg-type]
                                           system="Be brief.")
    sent = client.messages.create(model="tiny-llama", max_tokens=2, messages=messages,  # type: ignore[arg-type]
                                  system="Be brief.")
    assert counted.input_tokens == sent.usage.input_tokens > 0


@pytest.mark.conformance(client="anthropic",
                          feature="Message Batches: create, retrieve, list, results")
def test_message_batches_run_as_jobs_and_give_results_in_order(server: Server) -> None:
    client = claude(server)
    asks = {f"q-{i}": f"Question {i}?" for i in range(3)}
    batch = client.messages.batches.create(requests=[  # type: ignore[misc]
        {"custom_id": cid, "params": {"model": "tiny-llama", "max_tokens": 4,
                                      "temperature": 0,
                                      "messages": [{"role": "user", "content": text}]}}
        for cid, text in asks.items()])
    assert batch.id.startswith("msgbatch_")
    assert batch.processing_status == "in_progress"
    ended = wait_until(lambda: (b := client.messages.batches.retrieve(batch.id))
                       .processing_status == "ended" and b, timeout_s=120,
                       what="the message batch to end")
    assert ended.request_counts.succeeded == 3
    assert ended.results_url is not None
    results = list(client.messages.batches.results(batch.id))
    assert [r.custom_id for r in results] == list(asks)
    direct = client.messages.create(model="tiny-llama", max_tokens=4, extra_body={
        "temperature": 0}, messages=[{"role": "user", "content": asks["q-0"]}])
    first = results[0].result
    assert first.type == "succeeded"
    assert first.message.content[0].text == direct.content[0].text  # type: ignore[union-attr]
    assert batch.id in [b.id for b in client.messages.batches.list()]
    with pytest.raises(anthropic.NotFoundError):
        claude(server, EVALS_TOKEN).messages.batches.retrieve(batch.id)  # another team's


@pytest.mark.conformance(client="anthropic", feature="Message Batches: cancel")
def test_a_cancelled_message_batch_keeps_what_ran(server: Server) -> None:
    client = claude(server)
    batch = client.messages.batches.create(requests=[  # type: ignore[misc]
        {"custom_id": f"c-{i}", "params": {"model": "tiny-llama", "max_tokens": 64,
                                           "messages": [{"role": "user", "content": f"{i}"}]}}
        for i in range(300)])
    assert batch.cancel_initiated_at is None
    cancelling = client.messages.batches.cancel(batch.id)
    assert cancelling.processing_status in ("canceling", "ended")
    assert cancelling.cancel_initiated_at is not None
    assert cancelling.cancel_initiated_at >= batch.created_at
    ended = wait_until(lambda: (b := client.messages.batches.retrieve(batch.id))
                       .processing_status == "ended" and b, timeout_s=120,
                       what="the cancelled batch to end")
    assert ended.cancel_initiated_at == cancelling.cancel_initiated_at
    assert ended.ended_at is not None
    assert ended.ended_at >= ended.cancel_initiated_at
    counts = ended.request_counts
    assert counts.canceled > 0
    assert counts.succeeded + counts.canceled + counts.errored == 300
    kinds = [r.result.type for r in client.messages.batches.results(batch.id)]
    assert kinds.count("canceled") == counts.canceled
    assert kinds.count("succeeded") == counts.succeeded
