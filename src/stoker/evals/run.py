"""Running a suite: its cases as request lines (``repeat`` samples each), answered by a target,
model-graded assertions put to the judge (through the same target), every sample scored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stoker.evals.scorers import Score, judge_prompt, score_judged, score_text
from stoker.evals.stats import pass_at_k
from stoker.evals.suite import Case, Suite
from stoker.evals.targets import Answer, Target

CHAT = "/v1/chat/completions"


@dataclass(frozen=True, slots=True)
class Sample:
    """One answer to a case, each assertion's score and the judge's raw answers."""

    text: str | None
    error: str | None
    scores: tuple[Score, ...]
    judge_answers: tuple[str, ...] = ()
    cached: bool = False

    @property
    def passed(self) -> bool:
        """An answer passes when it came back and every assertion passed."""
        return self.error is None and all(s.passed for s in self.scores)


@dataclass(frozen=True, slots=True)
class CaseResult:
    """A case and its samples."""

    case_id: str
    question: str
    samples: tuple[Sample, ...]

    @property
    def passed(self) -> int:
        """How many samples passed."""
        return sum(s.passed for s in self.samples)

    def pass_at(self, k: int) -> float:
        """pass@k of this case (see :func:`stoker.evals.stats.pass_at_k`)."""
        return pass_at_k(len(self.samples), self.passed, k)


def sample_id(case: Case, i: int) -> str:
    """The custom_id of a case's ``i``-th sample."""
    return f"{case.id}#{i}"


def request_lines(suite: Suite) -> list[dict[str, Any]]:
    """Every sample of every case as a chat request line. With a ``seed``, sample i asks for
    seed + i, so repeated samples differ (and each is still answered from the result cache
    the next time)."""
    lines = []
    for case in suite.cases:
        for i in range(suite.repeat):
            body: dict[str, Any] = {"model": suite.model, **suite.sampling,
                                    "messages": case.chat_messages(suite.system)}
            if "seed" in suite.sampling and suite.repeat > 1:
                body["seed"] = int(suite.sampling["seed"]) + i
            lines.append({"custom_id": sample_id(case, i), "method": "POST", "url": CHAT,
                          "body": body})
    return lines


def _judge_lines(suite: Suite, answers: dict[str, Answer]) -> list[dict[str, Any]]:
    if suite.judge is None:
        return []
    lines = []
    for case in suite.cases:
        for i in range(suite.repeat):
            answer = answers.get(sample_id(case, i))
            if answer is None or answer.text is None:
                continue
            for n, check in enumerate(case.checks()):
                if check.type == "model_graded":
                    prompt = judge_prompt(check.rubric or "", case.question(), answer.text)
                    lines.append({"custom_id": f"{sample_id(case, i)}@{n}", "method": "POST",
                                  "url": CHAT, "body": {
                                      "model": suite.judge.model, "temperature": 0,
                                      "max_tokens": suite.judge.max_tokens,
                                      "messages": [{"role": "user", "content": prompt}]}})
    return lines


def run_suite(suite: Suite, target: Target, judge: Target | None = None) -> list[CaseResult]:
    """Answer, judge and score every sample of ``suite`` (the judge's target defaults to the
    cases' own)."""
    answers = target.answer(request_lines(suite), purpose="cases")
    judge_lines = _judge_lines(suite, answers)
    verdicts = (judge or target).answer(judge_lines, purpose="judge") if judge_lines else {}
    return [CaseResult(case.id, case.question(),
                       tuple(_sample(case, i, answers, verdicts) for i in range(suite.repeat)))
            for case in suite.cases]


def _sample(case: Case, i: int, answers: dict[str, Answer],
            verdicts: dict[str, Answer]) -> Sample:
    answer = answers.get(sample_id(case, i), Answer(None, "no answer came back"))
    if answer.text is None:
        return Sample(None, answer.error, ())
    scores, judged = [], []
    for n, check in enumerate(case.checks()):
        if check.type == "model_graded":
            verdict = verdicts.get(f"{sample_id(case, i)}@{n}", Answer(None, "no verdict"))
            judged.append(verdict.text or f"(the judge failed: {verdict.error})")
            scores.append(score_judged(verdict.text or ""))
        else:
            scores.append(score_text(check, answer.text))
    return Sample(answer.text, None, tuple(scores), tuple(judged), answer.cached)
