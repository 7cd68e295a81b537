"""Continuous batching in the transformers backend: rows joining a running loop decode exactly
as they would alone, and a row that finishes frees its slot at once (tiny model, CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stoker.runner.backends.protocol import GenerationInput, GenerationOutput
from stoker.runner.backends.transformers import TransformersBackend


@pytest.fixture(scope="module", params=["slots", "padded"])
def backend(tiny_model_dir: Path, request: pytest.FixtureRequest) -> TransformersBackend:
    """The tiny model in each KV layout: cache slots (its own) and the left-padded one any
    architecture gets."""
    return TransformersBackend(tiny_model_dir, kv_layout=request.param)


def greedy(prompt: str, n: int) -> GenerationInput:
    return GenerationInput(prompt=prompt, max_tokens=n, temperature=0.0)


PROMPTS = [("Hi", 5), ("A much longer prompt that needs no padding at all", 14),
           ("What is 2+2?", 9), ("Translate this sentence into German.", 3),
           ("The quick brown fox", 11)]


def test_rows_joining_mid_loop_decode_as_they_would_alone(backend: TransformersBackend) -> None:
    alone = {p: backend.generate([greedy(p, n)])[0] for p, n in PROMPTS}
    loop = backend.open_loop()
    got: dict[str, GenerationOutput] = {}
    # One row starts; the others join one step apart, into a loop already under way.
    for prompt, n in PROMPTS:
        assert loop.join(prompt, greedy(prompt, n)) is None
        got.update(loop.step())
    while loop.in_flight:
        got.update(loop.step())
    assert {p: o.text for p, o in got.items()} == {p: o.text for p, o in alone.items()}
    assert {p: o.completion_tokens for p, o in got.items()} == {
        p: o.completion_tokens for p, o in alone.items()}


def test_a_finished_row_frees_its_slot_for_the_next_at_the_next_step(
        backend: TransformersBackend) -> None:
    loop = backend.open_loop()
    loop.join("short", greedy("Hi", 2))
    loop.join("long", greedy("The quick brown fox", 40))
    finished: list[str] = []
    steps = 0
    while "short" not in finished:
        finished += [key for key, _ in loop.step()]
        steps += 1
    assert steps <= 2
    assert loop.in_flight == 1
    loop.join("next", greedy("What is 2+2?", 3))
    assert loop.in_flight == 2
    while "next" not in finished:
        finished += [key for key, _ in loop.step()]
    # The queued row was served while the long one was still decoding.
    assert "long" not in finished
    assert loop.in_flight == 1


def test_partial_text_grows_while_a_row_decodes(backend: TransformersBackend) -> None:
    loop = backend.open_loop()
    loop.join("row", greedy("The quick brown fox", 30))
    seen: list[str] = []
    for _ in range(6):
        loop.step()
        seen.append(loop.partial_text("row") or "")
    assert seen[-1]
    assert all(seen[i + 1].startswith(seen[i]) for i in range(len(seen) - 1))
    while loop.in_flight:
        done = dict(loop.step())
    assert done["row"].text.startswith(seen[-1])
    assert loop.partial_text("row") is None


def test_a_row_too_long_for_the_context_is_answered_at_once(
        backend: TransformersBackend) -> None:
    loop = backend.open_loop()
    refused = loop.join("big", greedy("x " * 10, backend.max_context_tokens))
    assert refused is not None
    assert refused.error
    assert "context" in refused.error
    assert loop.in_flight == 0


def test_abandoned_rows_leave_unanswered_and_the_others_decode_as_alone(
        backend: TransformersBackend) -> None:
    alone = backend.generate([greedy("What is 2+2?", 9)])[0]
    loop = backend.open_loop()
    loop.join("online", greedy("What is 2+2?", 9))
    loop.join("batch-1", greedy("The quick brown fox", 40))
    loop.join("batch-2", greedy("Hi", 40))
    got = dict(loop.step())
    assert sorted(loop.abandon({"batch-1", "batch-2", "never-joined"})) == ["batch-1",
                                                                            "batch-2"]
    assert loop.in_flight == 1
    while loop.in_flight:
        got.update(loop.step())
    assert set(got) == {"online"}
    assert got["online"].text == alone.text


def test_rows_abandoned_before_their_first_step_never_run(backend: TransformersBackend) -> None:
    loop = backend.open_loop()
    loop.join("batch", greedy("Hi", 10))
    assert loop.abandon({"batch"}) == ["batch"]
    assert loop.in_flight == 0
    assert loop.step() == []
