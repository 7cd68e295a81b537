"""Stored request bodies become backend inputs."""

from __future__ import annotations

import pytest

from stoker.runner.backends.protocol import ChatMessage
from stoker.runner.inputs import UnrunnableRequest, generation_input


def test_chat_body() -> None:
    spec = generation_input("/v1/chat/completions", {
        "messages": [{"role": "system", "content": "be brief"},
                     {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "max_tokens": 5, "temperature": 0, "seed": 3, "stop": "\n",
    })
    assert spec.messages == (ChatMessage("system", "be brief"), ChatMessage("user", "hi"))
    assert (spec.max_tokens, spec.temperature, spec.seed, spec.stop) == (5, 0.0, 3, ("\n",))


def test_completion_body_and_defaults() -> None:
    spec = generation_input("/v1/completions", {"prompt": ["once"], "max_completion_tokens": 9})
    assert (spec.prompt, spec.max_tokens, spec.temperature, spec.top_p) == ("once", 9, 1.0, 1.0)


@pytest.mark.parametrize(("endpoint", "body"), [
    ("/v1/embeddings", {"input": "x"}),
    ("/v1/completions", {"prompt": 3}),
])
def test_unrunnable(endpoint: str, body: dict[str, object]) -> None:
    with pytest.raises(UnrunnableRequest):
        generation_input(endpoint, body)
