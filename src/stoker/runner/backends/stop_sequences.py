"""Stop sequences on generated text: where a completion ends, and what may be streamed.

OpenAI's rule: the completion ends at the earliest place any of the stop strings occurs, and
that string is not part of the text. Which string ended it is kept, as Anthropic's
``stop_sequence`` reports it.
"""

from __future__ import annotations


def cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, str | None]:
    """``text`` up to the earliest occurrence of any stop string, and that string (None when
    none occurs). Where two start at the same place, the longer one is the match."""
    best: tuple[int, int] | None = None
    matched: str | None = None
    for stop in stops:
        at = text.find(stop)
        if at >= 0 and (best is None or (at, -len(stop)) < best):
            best, matched = (at, -len(stop)), stop
    if best is None:
        return text, None
    return text[: best[0]], matched


def streamable_text(text: str, stops: tuple[str, ...]) -> str:
    """The part of a row's text so far that will not change: no half-decoded character at
    the end, and nothing that may yet turn out to begin a stop sequence."""
    text = text.rstrip("\ufffd")
    held = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), held, -1):
            if text.endswith(stop[:n]):
                held = n
                break
    return text[: len(text) - held]
