"""A run's report: pass rate with its interval and pass@k, the cases that changed against the
baseline, the gate's verdict, cost and time; as JSON (for other tools, and as a later run's
baseline) and as Markdown (for the pull request)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stoker.evals.run import CaseResult
from stoker.evals.stats import Gate, gate, wilson
from stoker.evals.suite import Suite

#: Failing cases shown in the Markdown report (the JSON has all of them).
SHOWN_FAILURES = 10


@dataclass(frozen=True, slots=True)
class Baseline:
    """What a run is compared with: its name, and each case's (passed, samples)."""

    ref: str
    cases: dict[str, tuple[int, int]]

    @property
    def totals(self) -> tuple[int, int]:
        """(passed, samples) over every case."""
        return (sum(p for p, _ in self.cases.values()), sum(n for _, n in self.cases.values()))


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Where and how the run ran."""

    name: str | None = None
    commit: str | None = None
    target: str = "stoker"
    job_ids: tuple[str, ...] = ()
    duration_s: float = 0.0
    cost_usd: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def report_json(suite: Suite, results: list[CaseResult], info: RunInfo,
                baseline: Baseline | None) -> dict[str, Any]:
    """The whole report as JSON."""
    passed, total = sum(c.passed for c in results), sum(len(c.samples) for c in results)
    t = suite.thresholds
    verdict: Gate = gate((passed, total), baseline.totals if baseline else None,
                         min_pass_rate=t.min_pass_rate, max_drop=t.max_drop,
                         confidence=t.confidence)
    low, high = wilson(passed, total, t.confidence)
    ks = sorted({1, suite.repeat})
    return {
        "suite": suite.name, "model": suite.model, "tier": suite.tier, "name": info.name,
        "commit": info.commit, "target": info.target, "job_ids": list(info.job_ids),
        "duration_s": round(info.duration_s, 3), "cost_usd": info.cost_usd,
        "samples": total, "passed": passed, "pass_rate": passed / total if total else 0.0,
        "pass_rate_interval": [low, high], "confidence": t.confidence,
        "pass_at_k": {str(k): sum(c.pass_at(k) for c in results) / len(results) for k in ks},
        "baseline": None if baseline is None else {
            "ref": baseline.ref, "passed": baseline.totals[0], "samples": baseline.totals[1]},
        "changed": _changed(results, baseline),
        "gate": {"passed": verdict.passed, "reasons": list(verdict.reasons)},
        "cases": [_case_json(c) for c in results],
    }


def _case_json(case: CaseResult) -> dict[str, Any]:
    return {"id": case.case_id, "question": case.question, "passed": case.passed,
            "samples": len(case.samples),
            "answers": [{"text": s.text, "error": s.error, "passed": s.passed,
                         "cached": s.cached,
                         "scores": [{"passed": x.passed, "value": x.value, "reason": x.reason}
                                    for x in s.scores],
                         "judge": list(s.judge_answers)} for s in case.samples]}


def _changed(results: list[CaseResult], baseline: Baseline | None) -> list[dict[str, Any]]:
    """Cases whose share of passing samples moved, and cases new since the baseline."""
    if baseline is None:
        return []
    changed = []
    for case in results:
        was = baseline.cases.get(case.case_id)
        now = (case.passed, len(case.samples))
        if was is None or was[0] * now[1] != now[0] * was[1]:
            changed.append({"id": case.case_id, "was": None if was is None else list(was),
                            "now": list(now)})
    return changed


def baseline_of(report: dict[str, Any], ref: str) -> Baseline:
    """A stored report (JSON) as a baseline."""
    return Baseline(ref, {c["id"]: (int(c["passed"]), int(c["samples"]))
                          for c in report["cases"]})


def markdown(report: dict[str, Any]) -> str:
    """The report for a pull request: verdict, figures, changed cases, failures."""
    ok = report["gate"]["passed"]
    low, high = report["pass_rate_interval"]
    lines = [f"## {'✅' if ok else '❌'} Eval `{report['suite']}` on `{report['model']}`"
             f"{' (' + report['tier'] + ' tier)' if report['tier'] else ''}"]
    reasons = [f"- {reason}" for reason in report["gate"]["reasons"]]
    lines += ["", *reasons] if reasons else []
    base = report["baseline"]
    rows = [("Pass rate", f"{report['pass_rate']:.1%} ({report['passed']}/{report['samples']}"
                          f"; {report['confidence']:.0%} interval {low:.1%}–{high:.1%})")]
    if base:
        rate = base["passed"] / base["samples"] if base["samples"] else 0.0
        rows.append(("Baseline", f"{rate:.1%} ({base['passed']}/{base['samples']}, "
                                 f"`{base['ref']}`); change {report['pass_rate'] - rate:+.1%}"))
    rows += [(f"pass@{k}", f"{v:.1%}") for k, v in report["pass_at_k"].items()]
    rows.append(("Time", f"{report['duration_s']:.1f} s"))
    if report["cost_usd"] is not None:
        rows.append(("Cost", f"${report['cost_usd']:.6f}"))
    if report["job_ids"]:
        rows.append(("Jobs", ", ".join(f"`{j}`" for j in report["job_ids"])))
    lines += ["", "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]]
    lines += _changed_markdown(report["changed"]) + _failures_markdown(report["cases"])
    return "\n".join(lines) + "\n"


def _changed_markdown(changed: list[dict[str, Any]]) -> list[str]:
    if not changed:
        return []
    lines = ["", "### Changed since the baseline", "", "| Case | Was | Now |", "|---|---|---|"]
    for c in changed:
        was = "new" if c["was"] is None else f"{c['was'][0]}/{c['was'][1]}"
        lines.append(f"| `{c['id']}` | {was} | {c['now'][0]}/{c['now'][1]} |")
    return lines


def _failures_markdown(cases: list[dict[str, Any]]) -> list[str]:
    failing = [c for c in cases if c["passed"] < c["samples"]]
    if not failing:
        return []
    lines = ["", f"### Failing cases ({len(failing)})", "", "| Case | Answer | Why |",
             "|---|---|---|"]
    for case in failing[:SHOWN_FAILURES]:
        answer = next(a for a in case["answers"] if not a["passed"])
        why = answer["error"] or "; ".join(s["reason"] for s in answer["scores"]
                                           if not s["passed"])
        lines.append(f"| `{case['id']}` | {_cell(answer['text'] or '')} | {_cell(why)} |")
    if len(failing) > SHOWN_FAILURES:
        lines.append(f"\n…and {len(failing) - SHOWN_FAILURES} more (see the JSON report).")
    return lines


def _cell(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"
