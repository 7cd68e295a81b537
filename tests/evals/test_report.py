"""The report: figures, changed cases against a baseline, the gate, and its Markdown."""

from __future__ import annotations

from stoker.evals.report import Baseline, RunInfo, baseline_of, markdown, report_json
from stoker.evals.run import CaseResult, Sample
from stoker.evals.scorers import Score
from stoker.evals.suite import Suite

OK, BAD = Score(True, 1.0, "fine"), Score(False, 0.0, "expected to contain 'Paris'")


def suite(**extra: object) -> Suite:
    return Suite.model_validate({"name": "s", "model": "m", "tier": "smoke",
                                 "cases": [{"id": "a", "prompt": "x", "expected": "y"}],
                                 **extra})


def results(*passes: bool) -> list[CaseResult]:
    return [CaseResult(f"c{i}", f"question {i}",
                       (Sample("Paris" if ok else "Berlin | Bonn", None, (OK if ok else BAD,)),))
            for i, ok in enumerate(passes)]


def test_a_regression_against_the_baseline_fails_the_gate_and_shows_what_changed() -> None:
    now = results(True, False, False, False, False, False, False, False, False, False)
    base = Baseline("main", {f"c{i}": (1, 1) for i in range(10)})
    found = report_json(suite(thresholds={"max_drop": 0.1}), now, RunInfo(job_ids=("job_1",)),
                        base)
    assert (found["passed"], found["samples"]) == (1, 10)
    assert found["gate"]["passed"] is False
    assert [c["id"] for c in found["changed"]] == [f"c{i}" for i in range(1, 10)]
    text = markdown(found)
    assert text.startswith("## ❌ Eval `s` on `m` (smoke tier)")
    assert "| Baseline | 100.0% (10/10, `main`); change -90.0% |" in text
    assert "| `c1` | 1/1 | 0/1 |" in text
    assert "| `c1` | Berlin \\| Bonn | expected to contain 'Paris' |" in text  # escaped pipe
    assert "`job_1`" in text


def test_a_passing_run_and_its_report_as_a_later_baseline() -> None:
    found = report_json(suite(), results(True, True), RunInfo(cost_usd=0.5), None)
    assert found["gate"] == {"passed": True, "reasons": []}
    assert markdown(found).startswith("## ✅")
    assert "| Cost | $0.500000 |" in markdown(found)
    again = baseline_of(found, "report.json")
    assert again.totals == (2, 2)
