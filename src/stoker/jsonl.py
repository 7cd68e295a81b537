"""JSON Lines as the OpenAI Batch format and our job uploads use it: where a line ends."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def jsonl_lines(text: str) -> Iterator[tuple[int, str]]:
    """Non-blank lines of a JSONL document with their 1-based line numbers.

    Lines end at ``\n`` only (a ``\r`` before it is dropped): U+2028, U+2029, U+0085 and
    the other characters ``str.splitlines`` breaks at are ordinary characters inside JSON
    strings, as ``json.dumps(..., ensure_ascii=False)`` writes them. A UTF-8 byte order mark
    at the start is skipped."""
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            yield number, line


def jsonl_byte_lines(raw: bytes | bytearray) -> Iterator[tuple[int, bytes]]:
    """The same lines as :func:`jsonl_lines`, still as bytes, so that a line that is not
    UTF-8 can be reported as that line's problem; found one at a time, so a big upload is
    never copied into a list of its lines."""
    start = 3 if raw[:3] == b"\xef\xbb\xbf" else 0
    number = 0
    while start < len(raw):
        end = raw.find(b"\n", start)
        end = len(raw) if end < 0 else end
        number += 1
        line = bytes(raw[start:end]).removesuffix(b"\r")
        if line.strip():
            yield number, line
        start = end + 1


def jsonl_stream_lines(pieces: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """The same lines as :func:`jsonl_byte_lines`, from a document that arrives in pieces
    (which may split a line anywhere): only the line being completed is held."""
    number = 0
    pending = bytearray()
    first = True
    for piece in pieces:
        pending += piece
        if first:
            if len(pending) < 3 and b"\xef\xbb\xbf".startswith(bytes(pending)):
                continue  # too little yet to tell a byte order mark
            if pending[:3] == b"\xef\xbb\xbf":
                del pending[:3]
            first = False
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            number += 1
            line = bytes(pending[start:end]).removesuffix(b"\r")
            if line.strip():
                yield number, line
            start = end + 1
        del pending[:start]
    if first and pending[:3] == b"\xef\xbb\xbf":
        del pending[:3]
    line = bytes(pending).removesuffix(b"\r")
    if line.strip():
        yield number + 1, line


def in_chunks(lines: Iterator[bytes], size: int = 256 * 1024) -> Iterator[bytes]:
    """Lines gathered into chunks of about ``size`` bytes, for a streamed response: each
    chunk is one hop to a worker thread and one write, not each line."""
    chunk: list[bytes] = []
    held = 0
    for line in lines:
        chunk.append(line)
        held += len(line)
        if held >= size:
            yield b"".join(chunk)
            chunk, held = [], 0
    if chunk:
        yield b"".join(chunk)
