"""The local backend: a checkpoint loaded with HF transformers, decoded in batches.

Decoding is :class:`~stoker.runner.backends.decode_loop.TransformersDecodeLoop`: each step is
one forward pass over every unfinished row, each row keeps its own sampling parameters
(temperature, top_p, seed), ``max_tokens`` and stop sequences, and rows may join between
steps (continuous batching). The rows' KV caches are in cache slots, each step one packed
pass (:mod:`~stoker.runner.backends.kv_slots`), for the architectures that allow it, and in a
left-padded cache (:mod:`~stoker.runner.backends.kv_padded`) for any other. ``generate`` runs
one loop to the end over a fixed batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from stoker.openai_format import context_length_message
from stoker.runner.backends.decode_loop import KvBatch, TransformersDecodeLoop
from stoker.runner.backends.json_output import JsonConstraints
from stoker.runner.backends.kv_padded import PaddedKvBatch
from stoker.runner.backends.kv_slots import SlotKvBatch, supports_slots, use_slot_attention
from stoker.runner.backends.logprobs import prompt_logprobs
from stoker.runner.backends.protocol import GenerationInput, GenerationOutput, TokenLogprob


class TransformersBackend:
    """A causal LM checkpoint on the CPU or a GPU, generating in batches."""

    def __init__(self, path: Path, *, device: str = "cpu", dtype: str = "auto",
                 kv_layout: Literal["auto", "slots", "padded"] = "auto") -> None:
        """Load the checkpoint at ``path`` (a directory, or a GGUF file de-quantized as it
        loads). ``kv_layout`` "auto" decodes in cache slots where the architecture allows it
        (:func:`kv_slots.supports_slots`), else in a left-padded cache."""
        # Nothing may reach for a model hub: the checkpoint is local or it is an error.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from stoker.runner.backends.gguf_import import load_gguf

        hf_logging.disable_progress_bar()

        self.torch = torch
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
        slots_fit = supports_slots(self.model.config)
        if kv_layout == "slots" and not slots_fit:
            raise ValueError(f"{self.model.config.model_type} models cannot decode in cache "
                             "slots; use kv_layout 'padded' or 'auto'")
        if kv_layout == "auto":
            kv_layout = "slots" if slots_fit else "padded"
        self.kv_layout = kv_layout
        if self.kv_layout == "slots":
            use_slot_attention(self.model)
        self._eos = self.tokenizer.eos_token_id
        self._context = int(getattr(self.model.config, "max_position_embeddings", 2048))
        #: JSON answers (response_format): the constraint for each row that asks for one.
        self.json_constraints = JsonConstraints(self.tokenizer)

    @property
    def max_context_tokens(self) -> int:
        """The model's position limit."""
        return self._context

    @property
    def template_has_tools(self) -> bool:
        """Whether the checkpoint's chat template renders ``tools`` at all."""
        return "tools" in str(getattr(self.tokenizer, "chat_template", None) or "")

    def encode(self, spec: GenerationInput) -> list[int]:
        """The prompt's token ids; a chat goes through the checkpoint's chat template."""
        if spec.prompt_ids is not None:
            return list(spec.prompt_ids)
        if spec.messages is not None:
            messages = [{"role": m.role, "content": m.content} for m in spec.messages]
            ids = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=False
            )
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
            return [int(t) for t in ids]
        return [int(t) for t in self.tokenizer(spec.prompt or "")["input_ids"]]

    def too_long(self, ids: list[int], spec: GenerationInput) -> str | None:
        """Why the prompt cannot be run: token ids outside the vocabulary, or it and its token
        budget do not fit the context (None if it can)."""
        vocabulary = int(self.model.config.vocab_size)
        if any(t < 0 or t >= vocabulary for t in ids):
            return (f"prompt token ids must be within the model's vocabulary of {vocabulary} "
                    f"tokens (0 to {vocabulary - 1})")
        if len(ids) + spec.max_tokens <= self._context:
            return None
        return context_length_message(self._context, len(ids), spec.max_tokens)

    def prompt_logprobs(self, ids: list[int], top: int) -> list[TokenLogprob]:
        """Each prompt token's log-probability (see :func:`logprobs.prompt_logprobs`)."""
        return prompt_logprobs(self.model, self.tokenizer, self.torch, ids, top, self.device)

    def generator(self, seed: int | None) -> Any:
        """A random generator for one row: seeded when the request names a seed."""
        gen = self.torch.Generator(device=self.device)
        gen.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(4), "little"))
        return gen

    def kv_batch(self) -> KvBatch:
        """An empty KV batch for a decode loop, in this backend's layout."""
        if self.kv_layout == "slots":
            return SlotKvBatch(self.torch, self.model, self.device)
        return PaddedKvBatch(self.torch, self.model, self.device, self.tokenizer.pad_token_id)

    def open_loop(self) -> TransformersDecodeLoop:
        """A decode loop that rows can join between steps (continuous batching)."""
        return TransformersDecodeLoop(self)

    def generate(self, inputs: Sequence[GenerationInput]) -> list[GenerationOutput]:
        """Complete every input that fits the context in one batched decode loop."""
        loop = self.open_loop()
        outputs: dict[str, GenerationOutput] = {}
        for i, spec in enumerate(inputs):
            refused = loop.join(str(i), spec)
            if refused is not None:
                outputs[str(i)] = refused
        while loop.in_flight:
            outputs.update(loop.step())
        return [outputs[str(i)] for i in range(len(inputs))]
