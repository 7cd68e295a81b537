"""Each scorer on answers that pass and answers that fail."""

from __future__ import annotations

from typing import Any

import pytest

from stoker.evals.scorers import judge_prompt, score_judged, score_text
from stoker.evals.suite import Assertion


def check(kind: str, text: str, value: Any = None, **extra: Any) -> bool:
    return score_text(Assertion(type=kind, value=value, **extra), text).passed  # type: ignore[arg-type]


def test_exact_contains_and_not_contains_ignore_case_unless_asked() -> None:
    assert check("exact", "  Paris \n", "paris")
    assert not check("exact", "Paris, France", "Paris")
    assert check("contains", "It is PARIS.", "Paris")
    assert not check("contains", "It is PARIS.", "Paris", case_sensitive=True)
    assert check("not_contains", "Berlin", "Paris")
    assert not check("not_contains", "paris", "Paris")


def test_regex_searches_the_answer() -> None:
    assert check("regex", "The answer: H2O", r"H\s*2\s*O")
    assert not check("regex", "water", r"^H2O$")


def test_json_valid_and_json_schema_take_fenced_json() -> None:
    schema = {"type": "object", "required": ["capital"],
              "properties": {"capital": {"type": "string"}}}
    assert check("json_valid", '```json\n{"capital": "Paris"}\n```')
    assert not check("json_valid", "{capital: Paris}")
    assert check("json_schema", '{"capital": "Paris"}', schema)
    found = score_text(Assertion(type="json_schema", value=schema), '{"capital": 1}')
    assert not found.passed
    assert "schema" in found.reason


def test_numeric_takes_the_last_number_within_the_tolerance() -> None:
    assert check("numeric", "2 plus 3 is 5.", 5)
    assert check("numeric", "about 3.14", 3.1416, tolerance=0.01)
    assert not check("numeric", "5 or maybe 6", 5)
    assert check("numeric", "1,000 people", 1000)
    assert not check("numeric", "no idea", 5)


@pytest.mark.parametrize("kind", ["rouge_l", "chrf"])
def test_similarity_to_a_reference_against_a_threshold(kind: str) -> None:
    close = score_text(Assertion(type=kind, value="the cat sat on the mat",  # type: ignore[arg-type]
                                 threshold=0.5), "the cat sat on a mat")
    far = score_text(Assertion(type=kind, value="the cat sat on the mat",  # type: ignore[arg-type]
                               threshold=0.5), "quantum chromodynamics")
    assert close.passed
    assert not far.passed
    assert close.value > far.value


def test_a_judge_verdict_is_its_last_pass_or_fail() -> None:
    assert score_judged("The answer names Paris. PASS").passed
    assert not score_judged("It could PASS but is wrong. FAIL").passed
    assert not score_judged("no verdict here").passed
    prompt = judge_prompt("names the capital", "Capital of France?", "Paris")
    assert "names the capital" in prompt
    assert "Paris" in prompt


def test_model_graded_is_not_a_text_scorer() -> None:
    with pytest.raises(ValueError, match="judge"):
        score_text(Assertion(type="model_graded", rubric="r"), "x")
