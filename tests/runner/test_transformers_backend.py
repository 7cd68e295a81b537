"""The transformers backend on the project's tiny model: real forward passes on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from stoker.runner.backends.protocol import ChatMessage, GenerationInput
from stoker.runner.backends.tiny_model import is_checkpoint
from stoker.runner.backends.transformers import TransformersBackend


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path) -> TransformersBackend:
    return TransformersBackend(tiny_model_dir)


def greedy(prompt: str, n: int = 12, **kw: object) -> GenerationInput:
    return GenerationInput(prompt=prompt, max_tokens=n, temperature=0.0, **kw)  # type: ignore[arg-type]


def test_tiny_model_is_a_normal_checkpoint(tiny_model_dir: Path) -> None:
    assert is_checkpoint(tiny_model_dir)
    assert (tiny_model_dir / "model.safetensors").is_file()


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        TransformersBackend(tmp_path)


def test_batched_greedy_matches_one_at_a_time(backend: TransformersBackend) -> None:
    prompts = ["Hi", "A much longer prompt that needs no padding at all", "What is 2+2?"]
    batched = backend.generate([greedy(p) for p in prompts])
    single = [backend.generate([greedy(p)])[0] for p in prompts]
    assert [o.text for o in batched] == [o.text for o in single]
    assert [o.prompt_tokens for o in batched] == [o.prompt_tokens for o in single]


def test_max_tokens_and_token_counts(backend: TransformersBackend) -> None:
    (out,) = backend.generate([greedy("count these tokens", 7)])
    assert out.completion_tokens <= 7
    if out.finish_reason == "length":
        assert out.completion_tokens == 7
    expected_prompt = len(backend.tokenizer("count these tokens")["input_ids"])
    assert out.prompt_tokens == expected_prompt


def test_rows_keep_their_own_max_tokens(backend: TransformersBackend) -> None:
    short, long = backend.generate([greedy("same", 3), greedy("same", 20)])
    assert short.completion_tokens <= 3
    assert long.text.startswith(short.text)


def test_stop_sequence_cuts_the_text(backend: TransformersBackend) -> None:
    (free,) = backend.generate([greedy("Stop here", 24)])
    assert len(free.text) > 4
    stop = free.text[2:4]
    (cut,) = backend.generate([greedy("Stop here", 24, stop=(stop,))])
    assert cut.finish_reason == "stop"
    assert cut.text == free.text[: free.text.find(stop)]
    assert stop not in cut.text
    assert cut.stop_sequence == stop


def test_of_several_stops_the_earliest_in_the_text_ends_it(backend: TransformersBackend) -> None:
    (free,) = backend.generate([greedy("Q: what is 2+2?", 24)])
    early = free.text[1:3]
    late = next(free.text[i:i + 2] for i in range(len(free.text) - 1)
                if free.text.find(free.text[i:i + 2]) > free.text.find(early) + 1)
    # The later one first in the list: the text still ends at the earlier.
    (cut,) = backend.generate([greedy("Q: what is 2+2?", 24, stop=(late, early))])
    assert cut.text == free.text[: free.text.find(early)]
    assert cut.stop_sequence == early
    assert late not in cut.text
    assert early not in cut.text


def test_logprobs_are_each_generated_tokens_with_its_alternatives(
        backend: TransformersBackend) -> None:
    (out,) = backend.generate([greedy("Q: what is 2+2?", 6, logprobs=3)])
    assert out.logprobs is not None
    assert len(out.logprobs) == out.completion_tokens
    for entry in out.logprobs:
        assert entry.logprob is not None
        assert entry.logprob <= 0
        assert len(entry.top) == 3
        # Greedy: the token chosen is the most likely one.
        assert entry.top[0] == (entry.token, pytest.approx(entry.logprob))
    assert "".join(e.token for e in out.logprobs) == out.text
    (plain,) = backend.generate([greedy("Q: what is 2+2?", 6)])
    assert plain.logprobs is None


def test_echo_scores_the_prompt_as_decoding_would(backend: TransformersBackend) -> None:
    prompt = "Q: what is 2+2?"
    (scored,) = backend.generate([greedy(prompt, 0, logprobs=1, echo=True)])
    ids = backend.tokenizer(prompt)["input_ids"]
    assert (scored.text, scored.completion_tokens, scored.prompt_tokens) == (prompt, 0, len(ids))
    assert scored.logprobs is not None
    assert len(scored.logprobs) == len(ids)
    assert scored.logprobs[0].logprob is None
    (one,) = backend.generate([greedy(prompt, 1, logprobs=1)])
    assert one.logprobs is not None
    # The prompt extended by the token decoding chose, scored in one pass: that token's
    # log-probability is the one the decode step reported.
    rescored = backend.prompt_logprobs([*ids, *backend.tokenizer(one.text,
                                                                 add_special_tokens=False)
                                        ["input_ids"]], 1)
    assert rescored[len(ids)].logprob == pytest.approx(one.logprobs[0].logprob, abs=1e-3)
    (echoed,) = backend.generate([greedy(prompt, 1, logprobs=1, echo=True)])
    assert echoed.text == prompt + one.text
    assert echoed.logprobs is not None
    assert [e.token for e in echoed.logprobs] == [*(e.token for e in scored.logprobs),
                                                  one.logprobs[0].token]


def test_a_token_id_prompt_is_taken_as_it_is(backend: TransformersBackend) -> None:
    ids = tuple(backend.tokenizer("Stop here")["input_ids"])
    (by_ids,) = backend.generate([GenerationInput(prompt_ids=ids, max_tokens=8,
                                                  temperature=0.0)])
    (by_text,) = backend.generate([greedy("Stop here", 8)])
    assert (by_ids.text, by_ids.prompt_tokens) == (by_text.text, by_text.prompt_tokens)
    (bad,) = backend.generate([GenerationInput(prompt_ids=(1, 10**6), max_tokens=2)])
    assert bad.error is not None
    assert "vocabulary" in bad.error


def test_seed_makes_sampling_reproducible(backend: TransformersBackend) -> None:
    def sample(seed: int) -> str:
        spec = GenerationInput(prompt="seeded", max_tokens=16, temperature=1.0, seed=seed)
        return backend.generate([spec])[0].text

    assert sample(7) == sample(7)
    assert len({sample(s) for s in range(5)}) > 1


def test_top_p_near_zero_is_greedy(backend: TransformersBackend) -> None:
    spec = GenerationInput(prompt="nucleus", max_tokens=10, temperature=1.0, top_p=1e-6, seed=1)
    assert backend.generate([spec])[0].text == backend.generate([greedy("nucleus", 10)])[0].text


def test_chat_uses_the_chat_template(backend: TransformersBackend) -> None:
    spec = GenerationInput(messages=(ChatMessage("user", "hello"),), max_tokens=4, temperature=0)
    (out,) = backend.generate([spec])
    raw = backend.tokenizer("<|user|>hello</s><|assistant|>")["input_ids"]
    assert out.prompt_tokens == len(raw)


def test_too_long_prompt_fails_alone(backend: TransformersBackend) -> None:
    huge = GenerationInput(prompt="word " * 3000, max_tokens=4, temperature=0)
    fine = greedy("short", 4)
    bad, good = backend.generate([huge, fine])
    assert bad.error is not None
    assert "context" in bad.error
    assert good.error is None
    assert good.completion_tokens > 0
