"""The README's conformance table lists exactly the tests marked conformance (a green run of
them is what makes it true), and the table is built and spliced as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance import BEGIN, END, Entry, marked_tests, render, section, splice

README = Path(__file__).parents[1] / "README.md"


def test_the_readme_table_is_the_one_the_marked_tests_give() -> None:
    entries = marked_tests()
    assert {e.client for e in entries} == {"openai", "anthropic", "lm-eval", "litellm",
                                          "langchain-openai"}
    expected = render(entries)
    assert section(README.read_text(encoding="utf-8")) == expected, (
        "the README's conformance table is stale: run `make conformance`")


def test_a_failing_test_is_shown_failing_and_splicing_keeps_the_rest() -> None:
    table = render([Entry("openai", "chat", "t.py::a"), Entry("litellm", "x", "t.py::b",
                                                             passed=False)])
    assert "| chat |" in table
    assert "| x (**failing**) |" in table
    text = f"before\n{BEGIN}\nold\n{END}\nafter\n"
    assert splice(text, table) == f"before\n{BEGIN}\n{table}\n{END}\nafter\n"
    with pytest.raises(ValueError, match="no"):
        splice("no markers", table)
