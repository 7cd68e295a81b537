"""Validating big JSONL uploads in a child process.

Validating a 100,000-line upload is seconds of pure Python (JSON parsing, the request schema).
Done in a worker thread it holds the GIL for most of that time, and every online call, lease
and health check of the replica waits its turn for it. So an upload past
``limits.upload_worker_min_bytes`` is validated in a child process instead: the server sends it
the bytes and gets back the requests in their compact kept form (see ``jsonl_upload``), and its
own threads stay free.

The child is ``python -m stoker.api.upload_worker``, started with an allow-listed environment
(no token or key of the server's), on demand, one upload at a time. Frames on its pipes are
a length-prefixed JSON head and raw bytes (never pickle): the server parses nothing it did not
lay out itself. If the child dies or the exchange is cut (a client gone mid-upload), the child is
killed and the next upload starts a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
import sys
from array import array
from collections.abc import Iterator
from typing import Any, BinaryIO

from stoker.api.jsonl_upload import UploadedRequests, validate_lines
from stoker.child_env import child_environment
from stoker.errors import Unavailable, Unprocessable
from stoker.jsonl import jsonl_stream_lines

_LENGTH = struct.Struct(">Q")
#: The child's pipe reader buffers this much before it waits for the server to read.
_PIPE_LIMIT = 4 * 2**20
_PIECE_BYTES = 2**20


class UploadWorker:
    """The server's side: one child process, used by one upload at a time."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def validate(self, data: bytearray, *, max_requests: int
                       ) -> tuple[UploadedRequests, set[str]]:
        """What :func:`validate_upload` returns, computed in the child; ``data`` is emptied
        once sent. 422 as validation says, 503 (retryable) if the child failed."""
        async with self._lock:
            proc = await self._running()
            try:
                head, kept, offsets = await _exchange(proc, data, max_requests)
            except (OSError, EOFError, asyncio.IncompleteReadError) as exc:
                await self._kill()
                raise Unavailable("the upload could not be validated (its worker process "
                                  "stopped); send it again") from exc
            except BaseException:
                await self._kill()  # cut mid-exchange: the pipes are out of step
                raise
        if "refused" in head:
            raise Unprocessable(str(head["refused"]))
        offsets_array = array("q")
        offsets_array.frombytes(offsets)
        return (UploadedRequests(kept, offsets_array, int(head["most_tokens"])),
                set(head["models"]))

    async def start(self) -> None:
        """Start the child now rather than for the first big upload (its imports take a
        second)."""
        async with self._lock:
            await self._running()

    async def close(self) -> None:
        """Stop the child (it would stop by itself at the end of its input too)."""
        await self._kill()

    async def _running(self) -> asyncio.subprocess.Process:
        if self._proc is None or self._proc.returncode is not None:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "stoker.api.upload_worker",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                env=child_environment(os.environ), limit=_PIPE_LIMIT)
        return self._proc

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (for the benchmark's memory figures)."""
        return self._proc.pid if self._proc is not None else None


async def _exchange(proc: asyncio.subprocess.Process, data: bytearray,
                    max_requests: int) -> tuple[dict[str, Any], bytearray, bytearray]:
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(_LENGTH.pack(max_requests) + _LENGTH.pack(len(data)))
    while data:  # a piece at a time, dropped as sent: the upload is never held twice
        piece = bytes(data[:_PIECE_BYTES])
        del data[:_PIECE_BYTES]
        proc.stdin.write(piece)
        await proc.stdin.drain()
    (size,) = _LENGTH.unpack(await proc.stdout.readexactly(_LENGTH.size))
    head = json.loads(await proc.stdout.readexactly(size))
    kept = await _read_bytes(proc.stdout, int(head.get("kept", 0)))
    offsets = await _read_bytes(proc.stdout, int(head.get("offsets", 0)))
    return head, kept, offsets


async def _read_bytes(stream: asyncio.StreamReader, size: int) -> bytearray:
    """``size`` bytes, gathered a buffer at a time (``readexactly`` would copy them all)."""
    out = bytearray()
    while len(out) < size:
        piece = await stream.read(min(size - len(out), _PIECE_BYTES))
        if not piece:
            raise asyncio.IncompleteReadError(bytes(out), size)
        out += piece
    return out


class _Pieces:
    """One upload's bytes, read from the pipe a piece at a time as validation asks."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream, self._left = stream, size
        self.cut = False

    def __iter__(self) -> Iterator[bytes]:
        while self._left and not self.cut:
            piece = self._stream.read(min(self._left, _PIECE_BYTES))
            self.cut = not piece
            self._left -= len(piece)
            if piece:
                yield piece

    def skip_rest(self) -> None:
        """Read past what is left of the upload."""
        for _ in self:
            pass


def _serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The child's side: validate uploads from ``stdin`` until it ends, each line as it
    arrives (the upload is never held whole here either)."""
    while True:
        frame = stdin.read(2 * _LENGTH.size)
        if len(frame) < 2 * _LENGTH.size:
            return
        max_requests, size = struct.unpack(">QQ", frame)
        pieces = _Pieces(stdin, size)
        kept: bytes | bytearray = b""
        offsets = b""
        try:
            requests, models = validate_lines(jsonl_stream_lines(pieces),
                                              max_requests=max_requests)
        except Unprocessable as exc:
            head: dict[str, Any] = {"refused": exc.message}
        else:
            kept, offsets = requests.data, requests.offsets.tobytes()
            head = {"most_tokens": requests.most_tokens_asked(), "models": sorted(models),
                    "kept": len(kept), "offsets": len(offsets)}
            del requests
        encoded = json.dumps(head).encode()
        stdout.write(_LENGTH.pack(len(encoded)) + encoded)
        stdout.write(kept)
        stdout.write(offsets)
        stdout.flush()
        del kept, offsets  # not held while waiting for the next upload
        pieces.skip_rest()  # what an early refusal left unread
        if pieces.cut:
            return  # the server is gone


if __name__ == "__main__":
    # Validation is background work: where cores are few, the API's threads and the runners
    # (online answers) go first.
    os.nice(10)
    _serve(sys.stdin.buffer, sys.stdout.buffer)
