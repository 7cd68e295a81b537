"""Tool calling through Stoker with the unchanged `openai` SDK: tools, tool_choice and tool
messages go to an OpenAI-compatible provider as sent, and the calls it makes come back as
OpenAI's ``tool_calls``, streamed or not, and in batch output.

The provider here is a local HTTP server that answers with tool calls: no model that runs
tools can run on these machines (the tiny model and SmolLM2 have no tool support), so this is
the one stand-in, and it stands only for the provider; Stoker, its runner and the SDK are
real."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from tests.e2e.conftest import E2E_OPERATOR_TOKEN, Server, wait_until

pytestmark = pytest.mark.timeout(300)

TOKEN = "tools-team-token"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather now in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


class ToolProvider:
    """Answers a chat with a call of its first tool, and a chat that ends with the tool's
    answer with text quoting it; keeps every body it was sent."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        provider = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                provider.seen.append(body)
                raw = json.dumps(provider.answer(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    @staticmethod
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        last = body["messages"][-1]
        if last["role"] == "tool":
            message: dict[str, Any] = {"role": "assistant",
                                       "content": f"The tool says: {last['content']}"}
            finish = "stop"
        else:
            name = body["tools"][0]["function"]["name"]
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": name, "arguments": json.dumps({"city": "Paris"})}}]}
            finish = "tool_calls"
        return {"id": "up-1", "object": "chat.completion", "created": 0, "model": "up",
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}}


@pytest.fixture(scope="module")
def provider() -> Iterator[ToolProvider]:
    made = ToolProvider()
    yield made
    made.server.shutdown()


@pytest.fixture
def server(make_server: Callable[..., Server], tiny_model_dir: Any,
           provider: ToolProvider) -> Server:
    made = make_server(
        models={"tiny-llama": {"path": str(tiny_model_dir)},
                "tool-model": {"backend": "openai", "base_url": provider.url,
                               "remote_model": "up"}},
        teams={"app": {"token": TOKEN}}, operator_token=E2E_OPERATOR_TOKEN,
        runner_token="tools-runner-token")
    made.start(runners=1, expect=2)
    return made


def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0,
                         timeout=120)


@pytest.mark.conformance(client="openai",
                          feature="tools and tool messages to a remote model, tool_calls back")
def test_a_tool_round_trip_goes_to_the_provider_and_back(server: Server,
                                                          provider: ToolProvider) -> None:
    sdk = client(server)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = sdk.chat.completions.create(model="tool-model", messages=messages,
                                        tools=[WEATHER], tool_choice="auto",  # type: ignore[list-item]
                                        parallel_tool_calls=False)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    sent = provider.seen[-1]
    assert sent["tools"] == [WEATHER]
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("auto", False)
    # The SDK's own message object goes back as it is, then the tool's answer.
    messages += [choice.message, {"role": "tool", "tool_call_id": call.id, "content": "21 C"}]
    second = sdk.chat.completions.create(model="tool-model", messages=messages,
                                         tools=[WEATHER])  # type: ignore[list-item]
    assert second.choices[0].message.content == "The tool says: 21 C"
    assert second.choices[0].finish_reason == "stop"
    assistant, tool = provider.seen[-1]["messages"][1:]
    assert assistant["tool_calls"][0]["function"]["name"] == "get_weather"
    assert assistant["content"] is None
    assert tool == {"role": "tool", "tool_call_id": "call_1", "content": "21 C"}


@pytest.mark.conformance(client="openai", feature="streamed tool_calls")
def test_tool_calls_stream_as_deltas(server: Server) -> None:
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in client(server).chat.completions.create(
            model="tool-model", messages=[{"role": "user", "content": "Weather?"}],
            tools=[WEATHER], stream=True):  # type: ignore[list-item]
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                entry = calls.setdefault(delta.index, {"name": "", "arguments": ""})
                if delta.function is not None:
                    entry["name"] += delta.function.name or ""
                    entry["arguments"] += delta.function.arguments or ""
    assert finish == "tool_calls"
    assert calls == {0: {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}


@pytest.mark.conformance(client="openai", feature="tool_calls in batch output")
def test_tool_calls_come_back_in_batch_output(server: Server) -> None:
    line = {"custom_id": "w", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "tool-model", "tools": [WEATHER],
                     "messages": [{"role": "user", "content": "Weather?"}]}}
    sdk = client(server)
    upload = sdk.files.create(file=("tools.jsonl", json.dumps(line).encode()),
                              purpose="batch")
    batch = sdk.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                               completion_window="24h")
    done = wait_until(lambda: (b := sdk.batches.retrieve(batch.id)).status == "completed"
                      and b, timeout_s=120, what="the batch to complete")
    assert done.output_file_id is not None
    (row,) = [json.loads(x) for x in sdk.files.content(done.output_file_id).text.splitlines()]
    message = row["response"]["body"]["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"
    assert row["response"]["body"]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.conformance(client="openai", feature="tools on a local model: 400 naming tools")
def test_a_local_model_refuses_tools_naming_the_field(server: Server) -> None:
    sdk = client(server)
    for ask in ({"tools": [WEATHER]},
                {"messages": [{"role": "user", "content": "hi"},
                              {"role": "assistant", "content": None, "tool_calls": [
                                  {"id": "c", "type": "function",
                                   "function": {"name": "f", "arguments": "{}"}}]},
                              {"role": "tool", "tool_call_id": "c", "content": "done"}]}):
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.chat.completions.create(**{"model": "tiny-llama", "max_tokens": 4,  # type: ignore[call-overload]
                                           "messages": [{"role": "user", "content": "hi"}],
                                           **ask})
        assert refused.value.param == "tools"
        assert "chat template has no tool support" in refused.value.message


def test_malformed_tool_requests_are_400s_naming_the_field(server: Server) -> None:
    sdk = client(server)
    user = [{"role": "user", "content": "hi"}]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"messages": user, "tool_choice": "required"}, "tool_choice"),
        ({"messages": [*user, {"role": "tool", "content": "x"}]}, "messages.1"),
        ({"messages": user, "tools": [{"type": "function", "function": {"name": "a b"}}]},
         "tools.0.function.name"),
    ]
    for ask, param in cases:
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.chat.completions.create(model="tool-model", **ask)  # type: ignore[call-overload]
        assert (refused.value.param or "").startswith(param), (ask, refused.value.param)
