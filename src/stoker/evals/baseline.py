"""Finding a run's baseline: a JSON report on disk, or a stored run in Stoker (the newest
finished run of the same suite with that name, or at a commit starting with that ref), its
answers scored again by today's assertions (a judge's verdicts come from the result cache)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stoker.client import StokerClient
from stoker.evals.report import Baseline, baseline_of
from stoker.evals.run import run_suite
from stoker.evals.suite import Suite
from stoker.evals.targets import Answer, Target, answer_of_row

#: How far back among the team's jobs a stored baseline is looked for.
JOBS_SEARCHED = 1000


class BaselineNotFound(LookupError):
    """No report file and no stored run matches the ref."""


def load_baseline(ref: str, suite: Suite, client: StokerClient | None,
                  judge: Target | None) -> Baseline:
    """The baseline ``ref`` names (see the module docstring)."""
    path = Path(ref)
    if path.suffix == ".json" and path.is_file():
        return baseline_of(json.loads(path.read_text(encoding="utf-8")), ref)
    if client is None:
        raise BaselineNotFound(f"no report file {ref!r} (a stored run needs a Stoker server)")
    job = _stored_run(client, suite.name, ref)
    stored = StoredAnswers({row["custom_id"]: answer_of_row(row)
                            for row in client.results(job["id"])}, judge)
    results = run_suite(suite, stored)
    return Baseline(f"{ref} ({job['id']})", {c.case_id: (c.passed, len(c.samples))
                                              for c in results})


def _stored_run(client: StokerClient, suite: str, ref: str) -> dict[str, Any]:
    for job in client.jobs(limit=JOBS_SEARCHED):
        meta = job.get("metadata") or {}
        if (meta.get("eval_suite") == suite and meta.get("eval_purpose") == "cases"
                and job["status"] == "completed"
                and (meta.get("eval_name") == ref
                     or (len(ref) >= 7 and meta.get("eval_commit", "").startswith(ref)))):
            return job
    raise BaselineNotFound(f"no finished run of suite {suite!r} named {ref!r} or at a commit "
                           f"starting {ref!r} among the team's last {JOBS_SEARCHED} jobs")


@dataclass
class StoredAnswers:
    """A stored run's answers for its cases; a judge's questions go to ``judge``."""

    answers: dict[str, Answer]
    judge: Target | None

    def answer(self, lines: list[dict[str, Any]], *, purpose: str) -> dict[str, Answer]:
        """The stored answers (cases), or the judge's (judge)."""
        if purpose == "judge":
            if self.judge is None:
                return {}
            return self.judge.answer(lines, purpose=purpose)
        return {line["custom_id"]: self.answers.get(line["custom_id"],
                                                    Answer(None, "not in the baseline"))
                for line in lines}
