"""The local backend: a checkpoint loaded with HF transformers, batches decoded together.

One decode loop serves the whole batch: prompts are left-padded into one tensor, each step is
one forward pass over every unfinished row with the KV cache, and each row keeps its own
sampling parameters (temperature, top_p, seed), ``max_tokens`` and stop sequences.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stoker.runner.backends.protocol import GenerationInput, GenerationOutput


@dataclass
class _Row:
    """Decode state of one input."""

    spec: GenerationInput
    prompt_tokens: int
    generator: Any
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None


class TransformersBackend:
    """A causal LM checkpoint on the CPU or a GPU, generating in batches."""

    def __init__(self, path: Path, *, device: str = "cpu", dtype: str = "auto") -> None:
        # Nothing may reach for a model hub: the checkpoint is local or it is an error.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from stoker.runner.backends.gguf_import import load_gguf

        hf_logging.disable_progress_bar()

        self._torch = torch
        self.device = torch.device(device)
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        if path.suffix == ".gguf":  # a GGUF file: de-quantized as it loads
            model, self.tokenizer = load_gguf(
                path, dtype=torch.float32 if dtype == "auto" else torch_dtype)
        elif (path / "config.json").is_file():
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True,
                                                         dtype=torch_dtype)
        else:
            raise FileNotFoundError(f"no checkpoint at {path} (neither a directory with "
                                    "config.json nor a .gguf file)")
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = model.to(self.device)
        self.model.eval()
        self._eos = self.tokenizer.eos_token_id
        self._context = int(getattr(self.model.config, "max_position_embeddings", 2048))

    @property
    def max_context_tokens(self) -> int:
        """The model's position limit."""
        return self._context

    def _encode(self, spec: GenerationInput) -> list[int]:
        if spec.messages is not None:
            messages = [{"role": m.role, "content": m.content} for m in spec.messages]
            ids = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=False
            )
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
            return [int(t) for t in ids]
        return [int(t) for t in self.tokenizer(spec.prompt or "")["input_ids"]]

    def _too_long(self, ids: list[int], spec: GenerationInput) -> str | None:
        if len(ids) + spec.max_tokens <= self._context:
            return None
        return (
            f"{len(ids)} prompt tokens + max_tokens {spec.max_tokens} exceed the model's "
            f"context of {self._context} tokens; shorten the prompt or lower max_tokens"
        )

    def generate(self, inputs: Sequence[GenerationInput]) -> list[GenerationOutput]:
        """Complete every input that fits the context in one batched decode loop."""
        encoded = [self._encode(spec) for spec in inputs]
        errors = [self._too_long(ids, spec) for ids, spec in zip(encoded, inputs, strict=True)]
        rows = [
            _Row(spec, len(ids), self._generator(spec.seed))
            for spec, ids, err in zip(inputs, encoded, errors, strict=True)
            if err is None
        ]
        if rows:
            with self._torch.inference_mode():
                self._decode(rows, [ids for ids, err in zip(encoded, errors, strict=True)
                                    if err is None])
        done = iter(rows)
        outputs = []
        for ids, err in zip(encoded, errors, strict=True):
            if err is not None:
                outputs.append(GenerationOutput("", "error", len(ids), 0, error=err))
                continue
            row = next(done)
            if not row.spec.stop:
                row.text = self.tokenizer.decode(row.tokens, skip_special_tokens=True)
            outputs.append(GenerationOutput(row.text, row.finish_reason or "length",
                                            row.prompt_tokens, len(row.tokens)))
        return outputs

    def _generator(self, seed: int | None) -> Any:
        gen = self._torch.Generator(device=self.device)
        gen.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(4), "little"))
        return gen

    def _decode(self, rows: list[_Row], encoded: list[list[int]]) -> None:
        torch = self._torch
        width = max(len(ids) for ids in encoded)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor(
            [[pad] * (width - len(ids)) + ids for ids in encoded], device=self.device
        )
        mask = torch.tensor(
            [[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], device=self.device
        )
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                         use_cache=True)
        steps = max(r.spec.max_tokens for r in rows)
        for _ in range(steps):
            next_ids = self._pick(rows, out.logits[:, -1, :])
            if all(r.finish_reason is not None for r in rows):
                return
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            positions = positions[:, -1:] + 1
            out = self.model(input_ids=next_ids[:, None], attention_mask=mask,
                             position_ids=positions, past_key_values=out.past_key_values,
                             use_cache=True)

    def _pick(self, rows: list[_Row], logits: Any) -> Any:
        """Choose each row's next token and update its text and finish state."""
        logits = logits.float()
        chosen = logits.argmax(dim=-1)
        for i, row in enumerate(rows):
            if row.finish_reason is not None:
                chosen[i] = self.tokenizer.pad_token_id
                continue
            if row.spec.temperature > 0:
                chosen[i] = self._sample(logits[i], row)
            self._append(row, int(chosen[i]))
        return chosen

    def _sample(self, logits: Any, row: _Row) -> int:
        torch = self._torch
        probs = torch.softmax(logits / row.spec.temperature, dim=-1)
        if row.spec.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            keep = sorted_probs.cumsum(-1) - sorted_probs < row.spec.top_p
            sorted_probs = sorted_probs * keep
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=row.generator))

    def _append(self, row: _Row, token: int) -> None:
        if token == self._eos:
            row.finish_reason = "stop"
            return
        row.tokens.append(token)
        if row.spec.stop:
            # Stop sequences can span tokens, so they are matched on the decoded text.
            row.text = self.tokenizer.decode(row.tokens, skip_special_tokens=True)
        for stop in row.spec.stop:
            cut = row.text.find(stop)
            if cut >= 0:
                row.text = row.text[:cut]
                row.finish_reason = "stop"
                return
        if len(row.tokens) >= row.spec.max_tokens:
            row.finish_reason = "length"
