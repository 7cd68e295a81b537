"""Scorers: does one answer pass one assertion? Pure functions of the answer's text (and, for a
model-graded assertion, the judge's answer), each giving a :class:`Score`.

Similarity uses ROUGE-L (Google's ``rouge-score``) and chrF (``sacrebleu``); neither downloads
a model. JSON Schema checks use ``jsonschema``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from stoker.evals.suite import Assertion

#: How a judge's answer says pass or fail (its last such word counts).
_VERDICT = re.compile(r"\b(PASS|FAIL)\b", re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d+)*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True, slots=True)
class Score:
    """One assertion's verdict on one answer: passed, a value in [0, 1] where it has one, and
    why (shown in reports for failures)."""

    passed: bool
    value: float
    reason: str


def _verdict(passed: bool, reason: str, value: float | None = None) -> Score:
    return Score(passed, (1.0 if passed else 0.0) if value is None else value, reason)


def score_text(assertion: Assertion, text: str) -> Score:
    """The verdict of a text-only assertion (every kind but ``model_graded``)."""
    kind, expected = assertion.type, assertion.value
    answer = text if assertion.case_sensitive else text.lower()
    wanted = expected if assertion.case_sensitive or not isinstance(expected, str) \
        else expected.lower()
    if kind == "exact":
        return _verdict(answer.strip() == str(wanted).strip(), f"expected exactly {expected!r}")
    if kind == "contains":
        return _verdict(str(wanted) in answer, f"expected to contain {expected!r}")
    if kind == "not_contains":
        return _verdict(str(wanted) not in answer, f"expected not to contain {expected!r}")
    if kind == "regex":
        flags = 0 if assertion.case_sensitive else re.IGNORECASE
        return _verdict(re.search(str(expected), text, flags) is not None,
                        f"expected to match /{expected}/")
    if kind in ("json_valid", "json_schema"):
        return _json(text, expected if kind == "json_schema" else None)
    if kind == "numeric":
        return _numeric(text, float(expected), assertion.tolerance)
    if kind in ("rouge_l", "chrf"):
        return _similar(kind, text, str(expected), assertion.threshold)
    raise ValueError(f"{kind} needs a judge (see score_judged)")


def _json(text: str, schema: Any) -> Score:
    try:
        found = json.loads(_unfenced(text))
    except ValueError as exc:
        return _verdict(False, f"not JSON: {exc}")
    if schema is None:
        return _verdict(True, "valid JSON")
    import jsonschema

    problem = next(iter(jsonschema.Draft202012Validator(schema).iter_errors(found)), None)
    if problem is not None:
        return _verdict(False, f"JSON not matching the schema: {problem.message}")
    return _verdict(True, "JSON matching the schema")


def _unfenced(text: str) -> str:
    """The JSON of an answer, without the Markdown code fence models often put around it."""
    fenced = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", text, re.DOTALL)
    return fenced.group(1) if fenced else text


def _numeric(text: str, expected: float, tolerance: float) -> Score:
    """Passes when the last number in the text is within ``tolerance`` of ``expected``
    (absolute, or relative when the tolerance is given as a fraction of it: see Assertion)."""
    numbers = _NUMBER.findall(text)
    if not numbers:
        return _verdict(False, f"no number in the answer (expected {expected:g})")
    found = float(numbers[-1].replace(",", ""))
    ok = math.isclose(found, expected, abs_tol=tolerance, rel_tol=0.0)
    return _verdict(ok, f"expected {expected:g} ± {tolerance:g}, got {found:g}")


def _similar(kind: str, text: str, reference: str, threshold: float) -> Score:
    if kind == "rouge_l":
        from rouge_score import rouge_scorer

        value = rouge_scorer.RougeScorer(["rougeL"]).score(reference, text)["rougeL"].fmeasure
    else:
        from sacrebleu.metrics.chrf import CHRF

        value = CHRF().sentence_score(text, [reference]).score / 100.0
    name = "ROUGE-L" if kind == "rouge_l" else "chrF"
    return _verdict(value >= threshold, f"{name} {value:.2f} (threshold {threshold:.2f})",
                    value)


def judge_prompt(rubric: str, question: str, answer: str) -> str:
    """What the judge model is asked: the rubric, the question and the answer, and to end with
    PASS or FAIL."""
    return (f"You are grading an answer against a rubric.\n\nRubric: {rubric}\n\n"
            f"Question: {question}\n\nAnswer: {answer}\n\n"
            "Say in one sentence whether the answer meets the rubric, then end with the word "
            "PASS or the word FAIL.")


def score_judged(judge_answer: str) -> Score:
    """A model-graded verdict from the judge's raw answer (its last PASS or FAIL)."""
    verdicts = _VERDICT.findall(judge_answer)
    if not verdicts:
        return _verdict(False, "the judge gave no PASS or FAIL")
    return _verdict(verdicts[-1].upper() == "PASS", f"judge: {judge_answer.strip()[:200]}")
