"""Rows in cache slots, one packed pass per step: a joining row is prefilled in the pass the
running rows decode in, the cache grows as rows need it, and architectures the slots do not
support keep the left-padded layout (tiny models, CPU)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from transformers import GPT2Config, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config

from stoker.runner.backends.kv_slots import supports_slots
from stoker.runner.backends.protocol import GenerationInput, GenerationOutput
from stoker.runner.backends.transformers import TransformersBackend


def greedy(prompt: str, n: int) -> GenerationInput:
    return GenerationInput(prompt=prompt, max_tokens=n, temperature=0.0)


@pytest.fixture(scope="module")
def slots(tiny_model_dir: Path) -> TransformersBackend:
    return TransformersBackend(tiny_model_dir, kv_layout="slots")


@pytest.fixture(scope="module")
def padded(tiny_model_dir: Path) -> TransformersBackend:
    return TransformersBackend(tiny_model_dir, kv_layout="padded")


def joined_one_per_step(backend: TransformersBackend, inputs: list[GenerationInput]
                        ) -> dict[str, GenerationOutput]:
    """The outputs of ``inputs`` joining one loop one step apart, keyed by their index."""
    loop = backend.open_loop()
    got: dict[str, GenerationOutput] = {}
    for i, spec in enumerate(inputs):
        loop.join(str(i), spec)
        got.update(loop.step())
    while loop.in_flight:
        got.update(loop.step())
    return got


def steps_until_done(backend: TransformersBackend, key: str, *, joiner_at: int | None
                     ) -> tuple[int, str]:
    """Steps a loop takes to finish ``key`` (a 12-token row), with another row joining after
    ``joiner_at`` steps; and the row's text."""
    loop = backend.open_loop()
    loop.join(key, greedy("The quick brown fox", 12))
    steps = 0
    while True:
        if steps == joiner_at:
            loop.join("joiner", greedy("What is 2+2?", 30))
        done = dict(loop.step())
        steps += 1
        if key in done:
            return steps, done[key].text


def test_the_tiny_model_decodes_in_slots_by_default(tiny_model_dir: Path) -> None:
    assert TransformersBackend(tiny_model_dir).kv_layout == "slots"


def test_a_joining_row_is_prefilled_in_the_pass_the_running_rows_decode_in(
        slots: TransformersBackend, padded: TransformersBackend) -> None:
    alone_steps, alone_text = steps_until_done(slots, "row", joiner_at=None)
    joined_steps, joined_text = steps_until_done(slots, "row", joiner_at=3)
    assert joined_text == alone_text
    # The running row lost no step to the joiner's prefill.
    assert joined_steps == alone_steps
    # In the padded layout the prefill is a pass of its own, in which the row waits.
    padded_steps, padded_text = steps_until_done(padded, "row", joiner_at=3)
    assert padded_text == alone_text
    assert padded_steps == alone_steps + 1


def test_a_row_outgrowing_the_first_columns_decodes_as_in_the_padded_layout(
        slots: TransformersBackend, padded: TransformersBackend) -> None:
    # 300 new tokens pass the cache's first 256 columns, so it grows under a running loop
    # whose other rows come and go.
    inputs = [greedy("Hi", 300), greedy("What is 2+2?", 7), greedy("The quick brown fox", 90)]
    got = joined_one_per_step(slots, inputs)
    want = padded.generate(inputs)
    assert [got[str(i)].text for i in range(3)] == [o.text for o in want]
    assert [got[str(i)].completion_tokens for i in range(3)] == [
        o.completion_tokens for o in want]


def test_prompt_logprobs_use_the_models_own_attention_beside_slots(
        slots: TransformersBackend, padded: TransformersBackend) -> None:
    spec = GenerationInput(prompt="The quick brown fox", max_tokens=3, temperature=0.0,
                           echo=True, logprobs=2)
    got, want = slots.generate([spec])[0], padded.generate([spec])[0]
    assert got.text == want.text
    assert got.logprobs is not None
    assert want.logprobs is not None
    assert [lp.token for lp in got.logprobs] == [lp.token for lp in want.logprobs]
    # The prompt's first token has none (nothing predicts it).
    assert [lp.logprob or 0.0 for lp in got.logprobs] == pytest.approx(
        [lp.logprob or 0.0 for lp in want.logprobs], abs=1e-4)


def test_which_architectures_decode_in_slots() -> None:
    assert supports_slots(LlamaConfig())
    assert supports_slots(MistralConfig(sliding_window=None))
    assert not supports_slots(MistralConfig(sliding_window=4096))
    # Qwen2 names a window it does not use unless told to.
    assert supports_slots(Qwen2Config(use_sliding_window=False))
    assert not supports_slots(Qwen2Config(use_sliding_window=True, sliding_window=4096))
    assert not supports_slots(GPT2Config())


def save_random_model(tiny_model_dir: Path, directory: Path, model: Any) -> Path:
    """``model`` saved with the tiny model's tokenizer."""
    for item in tiny_model_dir.iterdir():
        if item.name.startswith("tokenizer") or item.name == "special_tokens_map.json":
            shutil.copy(item, directory / item.name)
    model.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("config_class", [MistralConfig, Qwen2Config, Qwen3Config])
def test_each_listed_architecture_decodes_in_slots_as_in_the_padded_layout(
        config_class: Any, tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    vocabulary = LlamaConfig.from_pretrained(tiny_model_dir).vocab_size
    config = config_class(vocab_size=vocabulary, hidden_size=64, intermediate_size=128,
                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                          head_dim=16, max_position_embeddings=512, sliding_window=None)
    torch.manual_seed(0)
    directory = save_random_model(tiny_model_dir, tmp_path,
                                  AutoModelForCausalLM.from_config(config))
    slotted = TransformersBackend(directory)
    assert slotted.kv_layout == "slots"
    inputs = [greedy("Hi", 20), greedy("The quick brown fox jumps", 9),
              greedy("What is 2+2?", 14)]
    got = joined_one_per_step(slotted, inputs)
    want = TransformersBackend(directory, kv_layout="padded").generate(inputs)
    assert [got[str(i)].text for i in range(3)] == [o.text for o in want]


@pytest.fixture(scope="module")
def gpt2_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random GPT-2 (learned positions, fused attention projections) with the tiny
    model's tokenizer: an architecture outside the slots' list."""
    import torch
    from transformers import GPT2LMHeadModel

    config = LlamaConfig.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    return save_random_model(tiny_model_dir, tmp_path_factory.mktemp("gpt2"), GPT2LMHeadModel(
        GPT2Config(vocab_size=config.vocab_size, n_positions=512, n_embd=64, n_layer=2,
                   n_head=2, bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id)))


def test_other_architectures_decode_in_the_padded_layout(gpt2_dir: Path) -> None:
    backend = TransformersBackend(gpt2_dir)
    assert backend.kv_layout == "padded"
    with pytest.raises(ValueError, match="cache slots"):
        TransformersBackend(gpt2_dir, kv_layout="slots")
    inputs = [greedy("Hi", 6), greedy("The quick brown fox jumps", 9)]
    alone = [backend.generate([spec])[0].text for spec in inputs]
    got = joined_one_per_step(backend, inputs)
    assert [got[str(i)].text for i in range(2)] == alone
