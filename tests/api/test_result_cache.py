"""A checkpoint's revision, which keys the result cache: it changes when the checkpoint does."""

from __future__ import annotations

from pathlib import Path

from stoker.api.result_cache import model_revision


def test_a_gguf_file_has_a_revision_that_changes_with_it(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF one")
    first = model_revision(gguf, None)
    gguf.write_bytes(b"GGUF two, longer")
    assert model_revision(gguf, None) != first  # cached answers of the old file never serve
