"""The README's conformance table: what each client does against Stoker, listed from the tests
marked ``@pytest.mark.conformance(client=..., feature=...)`` and written by
``make conformance`` (a pytest run of those tests with ``--conformance-table README.md``)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

#: Each client's package, whose installed version the table names; also the table's order.
PACKAGES = {"openai": "openai", "anthropic": "anthropic", "lm-eval": "lm_eval",
            "litellm": "litellm", "langchain-openai": "langchain-openai"}
BEGIN = ("<!-- conformance table: written by `make conformance` from the tests marked "
         "conformance; do not edit by hand -->")
END = "<!-- end of conformance table -->"
TESTS = Path(__file__).parent


@dataclass(frozen=True, slots=True)
class Entry:
    """One marked test: the client, what it shows works, where, and whether it passed."""

    client: str
    feature: str
    test: str
    passed: bool = True


def render(entries: Iterable[Entry]) -> str:
    """The table in Markdown, clients in :data:`PACKAGES` order, features as the tests list
    them."""
    order = list(PACKAGES)
    rows = sorted(entries, key=lambda e: order.index(e.client))
    lines = ["| Client | Version | What works | Checked by |", "|---|---|---|---|"]
    for e in rows:
        mark = "" if e.passed else " (**failing**)"
        lines.append(f"| {e.client} | {version(PACKAGES[e.client])} | {e.feature}{mark} "
                     f"| `{e.test}` |")
    return "\n".join(lines)


def splice(text: str, table: str) -> str:
    """``text`` (the README) with the table between its markers replaced by ``table``."""
    head, found, rest = text.partition(BEGIN)
    _, ended, tail = rest.partition(END)
    if not found or not ended:
        raise ValueError(f"the README has no {BEGIN!r} … {END!r} section")
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def section(text: str) -> str:
    """The table now between the README's markers."""
    return text.partition(BEGIN)[2].partition(END)[0].strip()


def marked_tests() -> list[Entry]:
    """Every test function marked ``conformance``, as found in the test modules (in file and
    line order), each taken to pass."""
    entries = []
    for path in sorted(TESTS.rglob("test_*.py")):
        if "pytest.mark.conformance" not in path.read_text(encoding="utf-8"):
            continue
        name = ".".join(path.relative_to(TESTS.parent).with_suffix("").parts)
        module = importlib.import_module(name)
        for func_name, func in inspect.getmembers(module, inspect.isfunction):
            for mark in getattr(func, "pytestmark", []):
                if mark.name == "conformance":
                    line = inspect.getsourcelines(func)[1]
                    entries.append((str(path.relative_to(TESTS.parent)), line, Entry(
                        mark.kwargs["client"], mark.kwargs["feature"],
                        f"{path.relative_to(TESTS.parent)}::{func_name}")))
    return [e for _, _, e in sorted(entries, key=lambda t: (t[0], t[1]))]
