"""Suite files: inline and JSONL cases, variables, includes, and the errors that name what to
fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from stoker.evals.run import request_lines
from stoker.evals.suite import SuiteError, load_suite

EXAMPLES = Path(__file__).parents[2] / "examples" / "evals"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_smoke_suite_loads_with_its_include_and_cases_file() -> None:
    suite = load_suite(EXAMPLES / "smollm2_smoke.yaml")
    ids = [c.id for c in suite.cases]
    assert len(ids) == len(set(ids)) == 29
    assert any(i.startswith("format/") for i in ids)  # from the included suite
    assert any(i.startswith("fact/") for i in ids)  # from the JSONL file
    assert suite.tier == "smoke"


def test_variables_fill_the_prompt_and_samples_get_their_own_seed(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path / "s.yaml", """
name: s
system: Be brief.
repeat: 3
sampling: {temperature: 0.7, seed: 10, max_tokens: 8}
cases:
  - {id: a, prompt: "Capital of {{ country }}?", vars: {country: France}, expected: Paris}
"""))
    lines = request_lines(suite)
    assert [line["custom_id"] for line in lines] == ["a#0", "a#1", "a#2"]
    assert [line["body"]["seed"] for line in lines] == [10, 11, 12]
    assert lines[0]["body"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"}]


@pytest.mark.parametrize(("text", "problem"), [
    ("name: s\ncases: [{id: a, prompt: 'x {{y}}', expected: z}]", "variable 'y'"),
    ("name: s\ncases: [{id: a, prompt: x}]", "expected or assert"),
    ("name: s\ncases: [{id: a, prompt: x, messages: [], expected: z}]", "one of them"),
    ("name: s\ncases: [{id: a, prompt: x, assert: [{type: regex}]}]", "needs a value"),
    ("name: s\ncases: [{id: a, prompt: x, assert: [{type: model_graded, rubric: r}]}]",
     "judge"),
    ("name: s\ncases: []", "no cases"),
    ("name: s\nbogus: 1\ncases: [{id: a, prompt: x, expected: z}]", "bogus"),
    ("- not a mapping", "mapping"),
])
def test_a_bad_suite_names_its_problem(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(SuiteError, match=problem):
        load_suite(write(tmp_path / "s.yaml", text))


def test_includes_join_cases_and_refuse_cycles_and_repeated_ids(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "name: a\ninclude: [b.yaml]\n"
                               "cases: [{id: one, prompt: x, expected: y}]")
    write(tmp_path / "b.yaml", "name: b\ncases: [{id: two, prompt: x, expected: y}]")
    assert [c.id for c in load_suite(tmp_path / "a.yaml").cases] == ["one", "two"]
    write(tmp_path / "b.yaml", "name: b\ninclude: [a.yaml]\n"
                               "cases: [{id: two, prompt: x, expected: y}]")
    with pytest.raises(SuiteError, match="includes itself"):
        load_suite(tmp_path / "a.yaml")
    write(tmp_path / "b.yaml", "name: b\ncases: [{id: one, prompt: x, expected: y}]")
    with pytest.raises(SuiteError, match="repeated: one"):
        load_suite(tmp_path / "a.yaml")
