"""A checkpoint's footprint, read from its files without loading weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from stoker.accounting.footprint import declared_footprint, read_checkpoint


def test_the_tiny_models_footprint_matches_torch(tiny_model_dir: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    facts = read_checkpoint(tiny_model_dir)
    assert facts is not None
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    unique = {id(p): p for p in model.parameters()}
    assert facts.params == sum(p.numel() for p in unique.values())
    assert facts.dtype == "F32"
    config = AutoConfig.from_pretrained(tiny_model_dir)
    head_dim = config.hidden_size // config.num_attention_heads
    assert facts.kv_bytes_per_token == (2 * config.num_hidden_layers
                                        * config.num_key_value_heads * head_dim * 4)


def test_no_checkpoint_no_facts(tmp_path: Path) -> None:
    assert read_checkpoint(tmp_path) is None
    assert read_checkpoint(tmp_path / "missing") is None


def test_declared_size() -> None:
    assert declared_footprint("m", 8_000_000_000, "bf16").weights_gb == pytest.approx(
        8e9 * 2 / 1024 ** 3)
