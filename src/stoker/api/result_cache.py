"""Fingerprints of deterministic requests, so an identical request is answered from cache."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# Fields that do not change what the model generates.
_IGNORED = frozenset({"model", "stream", "user", "metadata", "store", "n"})


def cache_key(scope: str, model: str, revision: str, endpoint: str,
              body: dict[str, Any]) -> str | None:
    """A fingerprint when the answer is deterministic (temperature 0 or a fixed seed).

    ``scope`` is who may be answered from it: one team, or a group of teams that chose to
    share, so that a hit never tells a team what another team asked."""
    if body.get("temperature", 1.0) != 0 and body.get("seed") is None:
        return None
    semantic = {k: v for k, v in body.items() if k not in _IGNORED}
    raw = json.dumps([scope, model, revision, endpoint, semantic], sort_keys=True,
                     ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def model_revision(path: Path, declared: str | None) -> str:
    """The declared revision, else one derived from the checkpoint's files (names, sizes,
    modification times and config), so a changed checkpoint never serves stale answers."""
    if declared:
        return declared
    digest = hashlib.sha256()
    if path.is_file():  # a GGUF file: its name, size and modification time
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    if path.is_dir():
        for entry in sorted(path.iterdir()):
            if entry.is_file():
                stat = entry.stat()
                digest.update(f"{entry.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        config = path / "config.json"
        if config.is_file():
            digest.update(config.read_bytes())
    return digest.hexdigest()[:16]
