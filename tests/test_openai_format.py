"""Request bodies as OpenAI's API takes them, and the responses Stoker shapes from results."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stoker.openai_format import (
    CHAT_COMPLETIONS,
    COMPLETIONS,
    normalised_body,
    split_prompts,
    token_budget,
)
from stoker.openai_responses import Choice, completion_logprobs, completion_response_body
from stoker.runner.inputs import generation_input

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(("prompt", "stored"), [
    ("text", "text"), (["text"], "text"), ([1, 2, 3], [1, 2, 3]), ([[4, 5]], [4, 5])])
def test_one_prompt_in_any_of_openais_forms(prompt: object, stored: object) -> None:
    body, _ = normalised_body(COMPLETIONS, {"prompt": prompt})
    assert body["prompt"] == stored


@pytest.mark.parametrize("prompt", [["a", "b"], [[1], [2]], [], [[]], ["a", 1], [-1]])
def test_several_or_malformed_prompts_are_not_one_body(prompt: object) -> None:
    with pytest.raises(ValidationError):
        normalised_body(COMPLETIONS, {"prompt": prompt})


def test_several_prompts_split_into_one_body_each_in_order() -> None:
    assert split_prompts({"prompt": ["a", "b"], "max_tokens": 3}) == [
        {"prompt": "a", "max_tokens": 3}, {"prompt": "b", "max_tokens": 3}]
    assert [b["prompt"] for b in split_prompts({"prompt": [[1, 2], [3]]})] == [[1, 2], [3]]
    assert split_prompts({"prompt": [1, 2]}) == [{"prompt": [1, 2]}]  # one token prompt
    assert split_prompts({"prompt": "a"}) == [{"prompt": "a"}]


def test_zero_max_tokens_is_a_budget_of_zero_not_the_default() -> None:
    body, _ = normalised_body(COMPLETIONS, {"prompt": "x", "max_tokens": 0, "echo": True,
                                            "logprobs": 1})
    assert token_budget(body) == 0
    assert (body["echo"], body["logprobs"]) == (True, 1)


def test_habitual_neutral_values_leave_the_stored_body_as_if_left_out() -> None:
    plain, _ = normalised_body(CHAT_COMPLETIONS, CHAT)
    habit, _ = normalised_body(CHAT_COMPLETIONS, {**CHAT, "logprobs": False, "top_logprobs": 0,
                                                  "temperature": None, "user": "u"})
    assert habit == plain
    completion, _ = normalised_body(COMPLETIONS, {"prompt": "x", "echo": False})
    assert "echo" not in completion


def test_top_logprobs_need_logprobs() -> None:
    with pytest.raises(ValidationError, match="needs logprobs"):
        normalised_body(CHAT_COMPLETIONS, {**CHAT, "top_logprobs": 2})
    body, _ = normalised_body(CHAT_COMPLETIONS, {**CHAT, "logprobs": True, "top_logprobs": 2})
    assert (body["logprobs"], body["top_logprobs"]) == (True, 2)


def test_completion_logprobs_in_openais_parallel_lists() -> None:
    entries = [["Q", None, []], [":", -1.5, [[":", -1.5], ["!", -2.0]]], [" 4", -0.25, [
        [" 4", -0.25]]]]
    shaped = completion_logprobs(entries)
    assert shaped == {"tokens": ["Q", ":", " 4"], "token_logprobs": [None, -1.5, -0.25],
                      "top_logprobs": [None, {":": -1.5, "!": -2.0}, {" 4": -0.25}],
                      "text_offset": [0, 1, 2]}


def test_a_response_has_a_choice_per_prompt_in_order() -> None:
    body = completion_response_body(
        endpoint=COMPLETIONS, request_id="r", model="m", created=1,
        choices=[Choice("a", "stop"), Choice("b", "length", [["b", -0.5, []]])],
        prompt_tokens=3, completion_tokens=2)
    assert [(c["index"], c["text"]) for c in body["choices"]] == [(0, "a"), (1, "b")]
    assert body["choices"][0]["logprobs"] is None
    assert body["choices"][1]["logprobs"]["token_logprobs"] == [-0.5]
    chat = completion_response_body(
        endpoint=CHAT_COMPLETIONS, request_id="r", model="m", created=1,
        choices=[Choice("é", "stop", [["é", -0.1, [["é", -0.1]]]])], prompt_tokens=1,
        completion_tokens=1)
    content = chat["choices"][0]["logprobs"]["content"]
    assert content == [{"token": "é", "logprob": -0.1, "bytes": [195, 169],
                        "top_logprobs": [{"token": "é", "logprob": -0.1, "bytes": [195, 169]}]}]


def test_response_format_is_kept_as_openai_spells_it_and_malformed_ones_are_refused() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body, _ = normalised_body(CHAT_COMPLETIONS, {**CHAT, "response_format": {
        "type": "json_schema", "json_schema": {"name": "a", "schema": schema, "strict": True}}})
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "a", "schema": schema, "strict": True}}
    assert generation_input(CHAT_COMPLETIONS, body).answer_schema() == schema
    json_mode, _ = normalised_body(CHAT_COMPLETIONS, {**CHAT, "response_format": {
        "type": "json_object"}})
    assert generation_input(CHAT_COMPLETIONS, json_mode).answer_schema() == {"type": "object"}
    text, _ = normalised_body(CHAT_COMPLETIONS, {**CHAT, "response_format": {"type": "text"}})
    assert generation_input(CHAT_COMPLETIONS, text).response_format is None
    for bad in ({"type": "json_schema"}, {"type": "json_object", "json_schema": {"name": "a"}},
                {"type": "xml"}, {"type": "json_schema", "json_schema": {"name": "a b"}},
                {"type": "json_object", "extra": 1}):
        with pytest.raises(ValidationError):
            normalised_body(CHAT_COMPLETIONS, {**CHAT, "response_format": bad})


TOOL = {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}
CALL = {"id": "c1", "type": "function", "function": {"name": "now", "arguments": "{}"}}


def test_no_tools_is_stored_as_if_left_out() -> None:
    plain, _ = normalised_body(CHAT_COMPLETIONS, CHAT)
    habit, _ = normalised_body(CHAT_COMPLETIONS, {**CHAT, "tools": [], "tool_choice": "none",
                                                  "parallel_tool_calls": True})
    assert habit == plain


def test_a_tool_exchange_reaches_the_backend_input_whole() -> None:
    sdk_assistant = {"role": "assistant", "content": None, "tool_calls": [CALL],
                     "refusal": None, "audio": None, "function_call": None,
                     "annotations": None}  # what the openai SDK's message object dumps
    body, _ = normalised_body(CHAT_COMPLETIONS, {
        "messages": [CHAT["messages"][0], sdk_assistant,
                     {"role": "tool", "tool_call_id": "c1", "content": "noon"}],
        "tools": [TOOL], "tool_choice": "auto"})
    spec = generation_input(CHAT_COMPLETIONS, body)
    assert spec.tools == (TOOL,)
    assert spec.tool_choice == "auto"
    assert spec.uses_tools()
    assert spec.messages is not None
    assert spec.messages[1].tool_calls == (CALL,)
    assert (spec.messages[2].role, spec.messages[2].tool_call_id) == ("tool", "c1")
    assert not generation_input(CHAT_COMPLETIONS, normalised_body(
        CHAT_COMPLETIONS, CHAT)[0]).uses_tools()


@pytest.mark.parametrize("message", [
    {"role": "tool", "content": "x"},  # answers no call
    {"role": "user", "content": "x", "tool_call_id": "c1"},
    {"role": "user", "content": "x", "tool_calls": [CALL]},
    {"role": "assistant", "content": None},  # neither text nor calls
    {"role": "user", "content": "x", "audio": {"id": "a"}},  # not honoured: refused
])
def test_malformed_tool_messages_are_refused(message: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        normalised_body(CHAT_COMPLETIONS, {"messages": [message]})


def test_tools_are_refused_on_text_completions() -> None:
    with pytest.raises(ValidationError, match="tools"):
        normalised_body(COMPLETIONS, {"prompt": "x", "tools": [TOOL]})
