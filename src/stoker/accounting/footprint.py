"""A checkpoint's memory footprint, read from its files: parameter count and dtype from the
safetensors headers (no weights are loaded), KV-cache bytes per token from config.json."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from stoker.core.waste import ModelFootprint

_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
                "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_GB = 1024 ** 3


@dataclass(frozen=True, slots=True)
class CheckpointFacts:
    """What the checkpoint's files say about its size."""

    params: int
    weight_bytes: int
    dtype: str
    kv_bytes_per_token: int


def _safetensors_header(path: Path) -> dict[str, object]:
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header: dict[str, object] = json.loads(f.read(length))
    return header


def read_checkpoint(path: Path) -> CheckpointFacts | None:
    """Facts from ``path``'s ``*.safetensors`` and ``config.json``; None if there are none."""
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    if not files:
        return None
    params = weight_bytes = 0
    dtypes: dict[str, int] = {}
    for file in files:
        for name, entry in _safetensors_header(file).items():
            if name == "__metadata__" or not isinstance(entry, dict):
                continue
            count = math.prod(entry["shape"])
            params += count
            weight_bytes += count * _DTYPE_BYTES.get(entry["dtype"], 2)
            dtypes[entry["dtype"]] = dtypes.get(entry["dtype"], 0) + count
    dtype = max(dtypes, key=lambda d: dtypes[d])
    return CheckpointFacts(params, weight_bytes, dtype,
                           _kv_bytes_per_token(path / "config.json", _DTYPE_BYTES.get(dtype, 2)))


def _kv_bytes_per_token(config_path: Path, element_bytes: int) -> int:
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    layers = int(config.get("num_hidden_layers", 0))
    heads = int(config.get("num_attention_heads", 1) or 1)
    kv_heads = int(config.get("num_key_value_heads", heads) or heads)
    head_dim = int(config.get("head_dim") or int(config.get("hidden_size", 0)) // heads)
    # Keys and values, every layer, every KV head.
    return 2 * layers * kv_heads * head_dim * element_bytes


def footprint(model: str, facts: CheckpointFacts) -> ModelFootprint:
    """The footprint the waste finder compares accelerator memory against."""
    return ModelFootprint(model, facts.weight_bytes / _GB, facts.kv_bytes_per_token / _GB)


def declared_footprint(model: str, params: int, dtype: str) -> ModelFootprint:
    """A footprint from a declared parameter count and dtype (no KV-cache figure)."""
    size = {"float32": 4, "fp32": 4, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2,
            "int8": 1, "fp8": 1, "int4": 0.5}.get(dtype.lower(), 2)
    return ModelFootprint(model, params * size / _GB, 0.0)
