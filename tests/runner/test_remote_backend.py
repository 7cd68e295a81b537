"""The remote backends' retry loop, key handling and request shapes, against a local HTTP
server that plays a provider's faults (5xx, a 400 that echoes the key) which a real provider
cannot be made to produce on demand. 429s from a real provider are in tests/e2e."""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from stoker.runner.backends.protocol import ChatMessage, GenerationInput, TokenLogprob
from stoker.runner.backends.providers import AnthropicBackend, OpenAICompatibleBackend
from stoker.runner.backends.remote import RemoteEndpoint, retry_delay_s, scrub

KEY = "sk-test-0123456789abcdef"


@dataclass
class Script:
    """What the fake provider answers, in order, and what it was sent."""

    answers: list[tuple[int, dict[str, Any]]]
    seen: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
def provider() -> Iterator[tuple[str, Script]]:
    script = Script([])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            script.seen.append((self.path, dict(self.headers), body))
            status, answer = script.answers.pop(0)
            raw = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", script
    server.shutdown()


def endpoint(url: str, **extra: Any) -> RemoteEndpoint:
    return RemoteEndpoint(base_url=url, remote_model="up-model", api_key=KEY,
                          max_concurrency=2, timeout_s=5, **extra)


CHAT_OK = {"choices": [{"message": {"role": "assistant", "content": "hi!"},
                        "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 4, "completion_tokens": 2}}
CHAT_IN = GenerationInput(messages=(ChatMessage("system", "terse"), ChatMessage("user", "yo")),
                          max_tokens=5, temperature=0, stop=("\n",))


def test_openai_call_shape_and_answer(provider: tuple[str, Script]) -> None:
    url, script = provider
    script.answers = [(200, CHAT_OK)]
    (out,) = OpenAICompatibleBackend(endpoint(url)).generate([CHAT_IN])
    assert (out.text, out.finish_reason, out.prompt_tokens, out.completion_tokens) == \
        ("hi!", "stop", 4, 2)
    path, headers, body = script.seen[0]
    assert path == "/chat/completions"
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert body["model"] == "up-model"
    assert body["messages"][0] == {"role": "system", "content": "terse"}
    assert body["stop"] == ["\n"]


def test_logprobs_go_to_an_openai_compatible_provider_and_come_back(
        provider: tuple[str, Script]) -> None:
    url, script = provider
    chat_logprobs = {"content": [{"token": "hi", "logprob": -0.5, "bytes": [104, 105],
                                  "top_logprobs": [{"token": "hi", "logprob": -0.5},
                                                   {"token": "yo", "logprob": -1.5}]}]}
    text_logprobs = {"tokens": ["Q", " 4"], "token_logprobs": [None, -0.25],
                     "top_logprobs": [None, {" 4": -0.25, " 5": -2.0}], "text_offset": [0, 1]}
    script.answers = [
        (200, {**CHAT_OK, "choices": [{**CHAT_OK["choices"][0],  # type: ignore[index]
                                       "logprobs": chat_logprobs}]}),
        (200, {"choices": [{"text": "Q 4", "finish_reason": "length",
                            "logprobs": text_logprobs}],
               "usage": {"prompt_tokens": 1, "completion_tokens": 1}})]
    backend = OpenAICompatibleBackend(endpoint(url))
    (chat,) = backend.generate([dataclasses.replace(CHAT_IN, logprobs=1)])
    (text,) = backend.generate([GenerationInput(prompt_ids=(7, 8), max_tokens=1, logprobs=2,
                                                echo=True)])
    assert chat.logprobs == (TokenLogprob("hi", -0.5, (("hi", -0.5), ("yo", -1.5))),)
    assert text.logprobs == (TokenLogprob("Q", None), TokenLogprob(" 4", -0.25, (
        (" 4", -0.25), (" 5", -2.0))))
    chat_body, text_body = script.seen[0][2], script.seen[1][2]
    assert (chat_body["logprobs"], chat_body["top_logprobs"]) == (True, 1)
    assert (text_body["prompt"], text_body["logprobs"], text_body["echo"]) == ([7, 8], 2, True)


def test_anthropic_refuses_what_its_api_cannot_give_without_calling_it(
        provider: tuple[str, Script]) -> None:
    url, script = provider
    backend = AnthropicBackend(endpoint(url))
    for spec in (dataclasses.replace(CHAT_IN, logprobs=0),
                 GenerationInput(prompt_ids=(1, 2), max_tokens=2)):
        (out,) = backend.generate([spec])
        assert out.error is not None
        assert "logprobs" in out.error
        assert out.retryable is False
    assert script.seen == []


JSON_FORMAT = {"type": "json_schema",
               "json_schema": {"name": "v", "schema": {"type": "object"}, "strict": True}}


def test_response_format_goes_to_an_openai_compatible_provider_as_it_is(
        provider: tuple[str, Script]) -> None:
    url, script = provider
    script.answers = [(200, CHAT_OK)]
    OpenAICompatibleBackend(endpoint(url)).generate(
        [dataclasses.replace(CHAT_IN, response_format=JSON_FORMAT)])
    assert script.seen[0][2]["response_format"] == JSON_FORMAT


def test_anthropic_refuses_response_format_without_calling_it(
        provider: tuple[str, Script]) -> None:
    url, script = provider
    (out,) = AnthropicBackend(endpoint(url)).generate(
        [dataclasses.replace(CHAT_IN, response_format=JSON_FORMAT)])
    assert out.error is not None
    assert "response_format" in out.error
    assert script.seen == []


TOOL = {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}
CALL = {"id": "c1", "type": "function", "function": {"name": "now", "arguments": "{}"}}


def test_tools_and_tool_messages_go_to_an_openai_compatible_provider_as_sent(
        provider: tuple[str, Script]) -> None:
    url, script = provider
    script.answers = [(200, {"choices": [{"message": {"role": "assistant", "content": None,
                                                      "tool_calls": [CALL]},
                                          "finish_reason": "tool_calls"}],
                             "usage": {"prompt_tokens": 9, "completion_tokens": 3}})]
    asked = GenerationInput(
        messages=(ChatMessage("user", "time?"),
                  ChatMessage("assistant", "", tool_calls=(CALL,)),
                  ChatMessage("tool", "noon", tool_call_id="c1", name="now")),
        tools=(TOOL,), tool_choice={"type": "function", "function": {"name": "now"}},
        parallel_tool_calls=False, max_tokens=8)
    (out,) = OpenAICompatibleBackend(endpoint(url)).generate([asked])
    assert (out.text, out.finish_reason, out.tool_calls) == ("", "tool_calls", (CALL,))
    body = script.seen[0][2]
    assert body["tools"] == [TOOL]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "now"}}
    assert body["parallel_tool_calls"] is False
    assert body["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "content": "noon", "tool_call_id": "c1", "name": "now"}]


def test_anthropic_refuses_openai_tools_without_calling_it(
        provider: tuple[str, Script]) -> None:
    url, script = provider
    (out,) = AnthropicBackend(endpoint(url)).generate(
        [dataclasses.replace(CHAT_IN, tools=(TOOL,))])
    assert out.error is not None
    assert out.error.startswith("tools: ")
    assert script.seen == []


def test_server_errors_are_retried_then_succeed(provider: tuple[str, Script]) -> None:
    url, script = provider
    script.answers = [(503, {}), (502, {}), (200, CHAT_OK)]
    slept: list[float] = []
    backend = OpenAICompatibleBackend(endpoint(url, max_retries=3), sleep=slept.append)
    (out,) = backend.generate([CHAT_IN])
    assert out.error is None
    assert out.text == "hi!"
    assert len(slept) == 2
    assert len(script.seen) == 3


def test_exhausted_retries_fail_as_retryable(provider: tuple[str, Script]) -> None:
    url, script = provider
    script.answers = [(500, {})] * 3
    backend = OpenAICompatibleBackend(endpoint(url, max_retries=2), sleep=lambda _: None)
    (out,) = backend.generate([CHAT_IN])
    assert out.retryable is True
    assert out.error is not None
    assert "gave up after 3 tries" in out.error


def test_a_refusal_is_not_retried_and_never_echoes_the_key(provider: tuple[str, Script]) -> None:
    url, script = provider
    script.answers = [(400, {"error": {"message": f"bad request from key {KEY}"}})]
    backend = OpenAICompatibleBackend(endpoint(url), sleep=lambda _: None)
    (out,) = backend.generate([CHAT_IN])
    assert out.retryable is False
    assert out.error is not None
    assert "400" in out.error
    assert KEY not in out.error
    assert "[redacted]" in out.error
    assert len(script.seen) == 1


def test_anthropic_call_shape_and_answer(provider: tuple[str, Script]) -> None:
    url, script = provider
    script.answers = [(200, {"content": [{"type": "text", "text": "red"}],
                             "stop_reason": "max_tokens",
                             "usage": {"input_tokens": 7, "output_tokens": 5}}),
                      (200, {"content": [{"type": "text", "text": "blue"}],
                             "stop_reason": "stop_sequence", "stop_sequence": "\n",
                             "usage": {"input_tokens": 7, "output_tokens": 2}})]
    backend = AnthropicBackend(endpoint(url))
    (out,), (stopped,) = backend.generate([CHAT_IN]), backend.generate([CHAT_IN])
    assert (out.text, out.finish_reason, out.prompt_tokens, out.completion_tokens) == \
        ("red", "length", 7, 5)
    assert (stopped.finish_reason, stopped.stop_sequence) == ("stop", "\n")
    path, headers, body = script.seen[0]
    assert path == "/v1/messages"
    assert headers["x-api-key"] == KEY
    assert "Authorization" not in headers
    assert headers["anthropic-version"] == "2023-06-01"
    assert body["system"] == "terse"
    assert body["messages"] == [{"role": "user", "content": "yo"}]
    assert body["stop_sequences"] == ["\n"]


def test_the_key_never_shows_in_the_endpoints_repr() -> None:
    assert KEY not in repr(endpoint("http://x"))


def test_retry_delay_honours_retry_after_within_the_cap() -> None:
    ep = endpoint("http://x", backoff_s=1.0, max_backoff_s=10.0)
    assert retry_delay_s(0, "3", ep) == 3.0
    assert retry_delay_s(0, "120", ep) == 10.0
    assert 0.5 <= retry_delay_s(0, None, ep) <= 1.5
    assert 4.0 <= retry_delay_s(3, None, ep) <= 10.0
    assert retry_delay_s(9, None, ep) == 10.0


def test_scrub_removes_the_secret_and_bounds_the_text() -> None:
    assert scrub(f"x{KEY}y", KEY) == "x[redacted]y"
    assert len(scrub("z" * 5000, KEY)) == 300


def test_scrub_removes_the_secret_in_any_case_and_echoed_credential_headers() -> None:
    assert KEY.lower() != KEY.upper()
    assert KEY.upper() not in scrub(f"bad key {KEY.upper()}", KEY)
    echoed = scrub('{"headers": {"Authorization": "Bearer sk-other-123", '
                   '"X-Api-Key": "k-456"}, "api_key=k789"}', None)
    assert not any(s in echoed for s in ("sk-other-123", "k-456", "k789"))
    assert echoed.count("[redacted]") == 3
