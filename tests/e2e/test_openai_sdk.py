"""The official `openai` SDK, unchanged, against real `stoker serve` processes.

Two servers: a *provider* Stoker with the tiny model, whose teams' tokens are the provider keys,
and a *gateway* Stoker that serves the tiny model locally and, through the OpenAI-compatible
backend, four remote models backed by the provider (one key from a file, one rate-limited,
one with a wrong key, one behind a redirect). Every response the suite sees and every log line
both servers and their runners write is scanned for the keys at the end.
"""

from __future__ import annotations

import http.server
import io
import json
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from openai.types import Completion
from openai.types.chat import ChatCompletion

from tests.e2e.conftest import E2E_OPERATOR_TOKEN, Server, free_port, wait_until

pytestmark = pytest.mark.timeout(600)

EVALS = "evals-token-" + "e2e"
OTHER = "other-team-token-e2e"
RUNNER_TOKEN = "runner-token-e2e"


@dataclass
class Fleet:
    provider: Server
    gateway: Server
    root: Path
    keys: dict[str, str]
    evil_hits: list[str]
    evil_url: str
    seen: list[str] = field(default_factory=list)

    def client(self, server: Server | None = None, token: str = EVALS) -> openai.OpenAI:
        def record(response: httpx.Response) -> None:
            response.read()
            self.seen.append(f"{response.status_code} {dict(response.headers)} {response.text}")

        http = httpx.Client(event_hooks={"response": [record]}, timeout=120)
        target = server or self.gateway
        return openai.OpenAI(base_url=f"{target.url}/v1", api_key=token, http_client=http,
                             max_retries=0)


class _Listener(threading.Thread):
    """A socket that records every connection it gets (it must get none)."""

    def __init__(self, hits: list[str]) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.hits = hits

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(2)
            try:
                self.hits.append(conn.recv(65536).decode("latin-1"))
            except OSError:
                self.hits.append("<connection>")
            conn.close()


def _redirector(target: str) -> http.server.ThreadingHTTPServer:
    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(307)
            self.send_header("Location", target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _configure(root: Path, name: str, config: dict[str, Any]) -> Server:
    data_dir = root / name
    data_dir.mkdir()
    port = free_port()
    path = data_dir / "stoker.yaml"
    config = {"port": port, "data_dir": str(data_dir), "operator_token": E2E_OPERATOR_TOKEN,
              **config}
    path.write_text(yaml.safe_dump(config))
    return Server(data_dir, path, port, operator_token=E2E_OPERATOR_TOKEN)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("openai-e2e")
    keys = {name: f"sk-{name}-{secrets.token_hex(16)}" for name in ("main", "limited", "wrong")}
    common = {"runner_token": RUNNER_TOKEN,
              "batching": {"max_batch_size": 16, "max_wait_ms": 20},
              "leases": {"ttl_s": 10.0, "runner_timeout_s": 20.0, "long_poll_s": 2.0,
                         "max_attempts": 3}}
    provider = _configure(root, "provider", {
        **common, "models": {"tiny-llama": {"path": str(tiny_model_dir)}},
        "teams": {"gateway": {"token": keys["main"]},
                  "limited": {"token": keys["limited"],
                              "quotas": {"max_queued_requests": 2}}}})
    hits: list[str] = []
    evil = _Listener(hits)
    evil.start()
    evil_url = f"http://127.0.0.1:{evil.sock.getsockname()[1]}"
    redirector = _redirector(evil_url)
    key_file = root / "provider.key"
    key_file.write_text(keys["main"] + "\n")
    remote = {"backend": "openai", "base_url": f"{provider.url}/v1", "remote_model": "tiny-llama"}
    gateway = _configure(root, "gateway", {
        **common,
        "models": {
            "tiny-llama": {"path": str(tiny_model_dir)},
            "remote-tiny": {**remote, "api_key_file": str(key_file)},
            "remote-limited": {**remote, "api_key_env": "E2E_LIMITED_KEY", "max_retries": 20,
                               "max_backoff_s": 0.5},
            "remote-wrong-key": {**remote, "api_key_env": "E2E_WRONG_KEY", "max_retries": 0},
            "remote-claude": {"backend": "anthropic", "base_url": provider.url,
                              "remote_model": "tiny-llama", "api_key_env": "E2E_CLAUDE_KEY"},
            "remote-redirect": {**remote, "api_key_file": str(key_file), "max_retries": 0,
                                "base_url": f"http://127.0.0.1:{redirector.server_port}/v1"},
        },
        "limits": {"max_body_bytes": 2 * 1024 * 1024},
        "teams": {"evals": {"token": EVALS}, "other": {"token": OTHER}}})
    try:
        provider.start(runners=1)
        gateway.start(runners=1, expect=6, env={"E2E_LIMITED_KEY": keys["limited"],
                                                "E2E_WRONG_KEY": keys["wrong"],
                                                "E2E_CLAUDE_KEY": keys["main"]})
        yield Fleet(provider, gateway, root, keys, hits, evil_url)
    finally:
        for server in (gateway, provider):
            if server.proc is not None and server.proc.poll() is None:
                server.interrupt()
            server.kill_everything()
        redirector.shutdown()
        evil.sock.close()


def chat(client: openai.OpenAI, model: str, text: str, **extra: Any) -> ChatCompletion:
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], max_tokens=8,
        temperature=0, **extra)


def batch_file(client: openai.OpenAI, model: str, n: int, *, temperature: float = 0) -> str:
    lines = [json.dumps({"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
                         "body": {"model": model, "max_tokens": 6, "temperature": temperature,
                                  "messages": [{"role": "user", "content": f"Item {i}?"}]}})
             for i in range(n)]
    data = ("\n".join(lines) + "\n").encode()
    return client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch").id


def run_batch(client: openai.OpenAI, file_id: str, timeout_s: float = 240) -> Any:
    batch = client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    return wait_until(lambda: (b := client.batches.retrieve(batch.id)).status in
                      ("completed", "failed", "cancelled", "expired") and b,
                      timeout_s=timeout_s, what=f"batch {batch.id}", every_s=0.3)


def start_long_batch(client: openai.OpenAI, n: int) -> Any:
    """A batch of ``n`` sampled 48-token completions, once its first results are in."""
    lines = [json.dumps({"custom_id": f"c{i}", "method": "POST", "url": "/v1/completions",
                         "body": {"model": "tiny-llama", "prompt": f"Story {i}:",
                                  "max_tokens": 48, "temperature": 1}})
             for i in range(n)]
    file_id = client.files.create(file=("long.jsonl", io.BytesIO("\n".join(lines).encode())),
                                  purpose="batch").id
    batch = client.batches.create(input_file_id=file_id, endpoint="/v1/completions",
                                  completion_window="24h")
    wait_until(lambda: client.batches.retrieve(batch.id).request_counts.completed > 0,
               timeout_s=120, what="the batch's first results")
    return batch


@pytest.mark.conformance(client="openai", feature="models.list")
def test_models_lists_every_served_model(fleet: Fleet) -> None:
    names = {m.id for m in fleet.client().models.list()}
    assert names == {"tiny-llama", "remote-tiny", "remote-limited", "remote-wrong-key",
                     "remote-redirect", "remote-claude"}


@pytest.mark.conformance(client="openai", feature="chat and text completions")
def test_chat_and_completion_parse_as_the_sdks_types(fleet: Fleet) -> None:
    client = fleet.client()
    reply = chat(client, "tiny-llama", "Hello there")
    assert isinstance(reply, ChatCompletion)
    assert reply.choices[0].message.role == "assistant"
    assert reply.usage is not None
    assert reply.usage.completion_tokens > 0
    text = client.completions.create(model="tiny-llama", prompt="Once upon", max_tokens=5)
    assert isinstance(text, Completion)
    assert text.choices[0].finish_reason in ("stop", "length")


@pytest.mark.conformance(client="openai", feature="streaming chat, usage in the stream")
def test_streaming_gives_the_same_text_as_a_plain_call(fleet: Fleet) -> None:
    client = fleet.client()
    plain = chat(client, "tiny-llama", "Stream me").choices[0].message.content
    chunks = list(client.chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "Stream me"}], max_tokens=8,
        temperature=0, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == plain
    assert chunks[-1].usage is not None
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")


def test_online_calls_go_before_queued_batch_work(fleet: Fleet) -> None:
    client = fleet.client()
    batch = start_long_batch(client, 320)
    reply = client.chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "Am I first?"}],
        max_tokens=8, temperature=1)
    during = client.batches.retrieve(batch.id)
    assert reply.choices[0].message.content is not None
    # The online call was answered while most of the batch still waited in the queue.
    assert during.status == "in_progress"
    assert during.request_counts.completed < 320 - 32
    client.batches.cancel(batch.id)


@pytest.mark.conformance(client="openai", feature="NotFoundError for an unknown model")
def test_unknown_model_is_404(fleet: Fleet) -> None:
    with pytest.raises(openai.NotFoundError, match="gpt-9"):
        chat(fleet.client(), "gpt-9", "hi")


@pytest.mark.conformance(client="openai",
                          feature="Files and Batches: upload, create, poll, output file")
def test_batch_round_trip(fleet: Fleet) -> None:
    client = fleet.client()
    done = run_batch(client, batch_file(client, "tiny-llama", 40))
    assert done.status == "completed"
    assert done.request_counts.completed == 40
    assert done.error_file_id is None
    lines = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(x["custom_id"] for x in lines) == sorted(f"q{i}" for i in range(40))
    for x in lines:
        assert x["response"]["status_code"] == 200
        assert ChatCompletion.model_validate(x["response"]["body"]).choices[0].message.content \
            is not None


@pytest.mark.conformance(client="openai",
                          feature="batches.cancel, request_counts as OpenAI counts them")
def test_cancel_mid_batch_keeps_what_ran(fleet: Fleet) -> None:
    client = fleet.client()
    batch = start_long_batch(client, 400)
    assert client.batches.cancel(batch.id).status in ("cancelling", "cancelled")
    done = wait_until(lambda: (b := client.batches.retrieve(batch.id)).status == "cancelled"
                      and b, timeout_s=120, what="the batch to be cancelled")
    completed = done.request_counts.completed
    assert 0 < completed < 400
    outputs = client.files.content(done.output_file_id).text.splitlines()
    errors = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
    assert len(outputs) == completed
    assert len(errors) == 400 - completed
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"}
    assert done.request_counts.failed == 400 - completed  # as OpenAI counts them


def test_a_file_with_malformed_lines_fails_validation(fleet: Fleet) -> None:
    client = fleet.client()
    good = json.dumps({"custom_id": "good", "method": "POST", "url": "/v1/chat/completions",
                       "body": {"model": "tiny-llama", "max_tokens": 4,
                                "messages": [{"role": "user", "content": "hi"}]}})
    data = "\n".join([good, '{"custom_id": "broken", ', json.dumps({"custom_id": "nobody"})])
    file_id = client.files.create(file=("mixed.jsonl", io.BytesIO(data.encode())),
                                  purpose="batch").id
    batch = client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    assert batch.status == "failed"  # as OpenAI's validation does: nothing of it runs
    assert batch.errors is not None
    assert batch.errors.data is not None
    assert [(e.line, e.code) for e in batch.errors.data] == [(2, "invalid_json"),
                                                             (3, "invalid_request")]


def test_another_teams_file_is_404(fleet: Fleet) -> None:
    ours, theirs = fleet.client(), fleet.client(token=OTHER)
    file_id = batch_file(ours, "tiny-llama", 1)
    with pytest.raises(openai.NotFoundError):
        theirs.files.content(file_id)
    with pytest.raises(openai.NotFoundError):
        theirs.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                              completion_window="24h")


def test_huge_upload_is_413(fleet: Fleet) -> None:
    client = fleet.client()
    with pytest.raises(openai.APIStatusError) as caught:
        client.files.create(file=("huge.jsonl", io.BytesIO(b"x" * (3 * 1024 * 1024))),
                            purpose="batch")
    assert caught.value.status_code == 413
    assert "max_body_bytes" in caught.value.message or "limit" in caught.value.message


@pytest.mark.conformance(client="openai", feature="a remote OpenAI-compatible model behind Stoker")
def test_remote_model_answers_as_the_provider(fleet: Fleet) -> None:
    via_gateway = chat(fleet.client(), "remote-tiny", "Who are you?", seed=7)
    direct = chat(fleet.client(fleet.provider, fleet.keys["main"]), "tiny-llama",
                  "Who are you?", seed=7)
    assert via_gateway.model == "remote-tiny"
    assert via_gateway.choices[0].message.content == direct.choices[0].message.content
    assert via_gateway.usage == direct.usage


def test_anthropic_backend_speaks_the_messages_api(fleet: Fleet) -> None:
    # The provider Stoker serves Anthropic's /v1/messages; the gateway's anthropic backend
    # sends x-api-key and anthropic-version, and maps the system prompt and stop reason.
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Name a colour"}]
    via_gateway = fleet.client().chat.completions.create(
        model="remote-claude", messages=messages, max_tokens=8, temperature=0)
    direct = fleet.client(fleet.provider, fleet.keys["main"]).chat.completions.create(
        model="tiny-llama", messages=messages, max_tokens=8, temperature=0)
    assert via_gateway.choices[0].message.content == direct.choices[0].message.content
    assert via_gateway.choices[0].finish_reason == direct.choices[0].finish_reason
    assert via_gateway.usage is not None
    assert via_gateway.usage.prompt_tokens == direct.usage.prompt_tokens


def test_remote_batch_runs_on_the_provider(fleet: Fleet) -> None:
    client = fleet.client()
    done = run_batch(client, batch_file(client, "remote-tiny", 12, temperature=1))
    assert done.status == "completed"
    assert done.request_counts.completed == 12


def test_provider_rate_limits_are_retried_and_counted(fleet: Fleet) -> None:
    client = fleet.client()
    # The provider queues at most 2 of this key's requests; the gateway sends 8 at once, so
    # the rest get 429s until the provider's runner takes the queued ones.
    done = run_batch(client, batch_file(client, "remote-limited", 40, temperature=1))
    assert done.status == "completed"
    assert done.request_counts.completed == 40
    counters = httpx.get(f"{fleet.gateway.url}/api/counters", timeout=10,
                         headers=fleet.gateway.operator_headers()).json()
    assert counters["provider_rate_limits"] > 0


def test_a_wrong_key_fails_the_request_cleanly(fleet: Fleet) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        chat(fleet.client(), "remote-wrong-key", "hi")
    assert caught.value.status_code == 502
    assert "credentials" in caught.value.message


def test_nothing_in_a_request_sends_a_key_elsewhere(fleet: Fleet) -> None:
    client = fleet.client()
    with pytest.raises(openai.APIStatusError) as caught:
        chat(client, "remote-redirect", "follow me")
    assert caught.value.status_code == 502
    assert "redirect" in caught.value.message
    # Fields that try to point the call elsewhere are refused by name, not followed.
    for field_name in ("api_base", "base_url", "api_key"):
        with pytest.raises(openai.BadRequestError) as refused:
            chat(client, "remote-tiny", "go elsewhere",
                 extra_body={field_name: fleet.evil_url})
        assert refused.value.param == field_name
    with pytest.raises(openai.NotFoundError):
        chat(client, f"{fleet.evil_url}/v1/tiny-llama", "hi")
    assert fleet.evil_hits == []


def test_no_key_in_any_response_or_log_line(fleet: Fleet) -> None:
    logs = [p for p in fleet.root.rglob("*.log") if p.is_file()]
    runner_logs = [p for p in logs if p.name.startswith("runner-")]
    assert len(runner_logs) == 7  # the provider's runner and the gateway's six
    assert len(fleet.seen) > 20
    for name, key in fleet.keys.items():
        for text in fleet.seen:
            assert key not in text, f"the {name} key appeared in a response"
        for path in logs:
            assert key not in path.read_text(errors="replace"), f"the {name} key is in {path}"
