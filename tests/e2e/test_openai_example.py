"""The README's openai SDK example runs, unchanged, against a real server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import Server

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "openai_sdk_batch.py"


def test_openai_sdk_example(make_server: Callable[..., Server]) -> None:
    server = make_server()
    server.start(runners=1)
    done = subprocess.run([sys.executable, str(EXAMPLE), server.url], capture_output=True,
                          text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    assert ": completed," in done.stdout
    assert "q0: " in done.stdout
    assert "online: " in done.stdout
    server.interrupt()
