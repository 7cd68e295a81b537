"""An eval suite: cases (a prompt or messages, variables, what the answer must satisfy), the
model and sampling parameters they run with, the tier, how many samples per case, and the
thresholds a run is gated on. Written as YAML (cases inline or in a JSONL file); a suite may
include others, whose cases join its own. A promptfoo config or an lm-eval generation task is
read as the suite it describes (:mod:`stoker.evals.promptfoo`, :mod:`stoker.evals.lm_eval_task`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
AssertionType = Literal["exact", "contains", "not_contains", "regex", "json_valid",
                        "json_schema", "numeric", "rouge_l", "chrf", "model_graded"]


class SuiteError(ValueError):
    """A suite file that cannot be used, with what to fix."""


class Assertion(BaseModel):
    """What one answer must satisfy. ``value``: the string, pattern, schema, number or
    reference; ``tolerance`` (numeric, absolute); ``threshold`` (rouge_l, chrf: the least
    similarity, 0 to 1); ``rubric`` (model_graded: what the judge checks)."""

    model_config = ConfigDict(extra="forbid")

    type: AssertionType
    value: Any = None
    case_sensitive: bool = False
    tolerance: float = Field(0.0, ge=0)
    threshold: float = Field(0.5, ge=0, le=1)
    rubric: str | None = None

    @model_validator(mode="after")
    def _what_each_needs(self) -> Assertion:
        if self.type == "model_graded" and not self.rubric:
            raise ValueError("model_graded needs a rubric")
        if self.type not in ("json_valid", "model_graded") and self.value is None:
            raise ValueError(f"{self.type} needs a value")
        return self


class Case(BaseModel):
    """One case: a prompt (or chat messages) with ``{{variables}}``, and its assertions
    (``expected`` is short for a ``contains`` assertion)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:/-]+$")
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    expected: str | None = None
    assertions: list[Assertion] = Field(default_factory=list, alias="assert")

    @model_validator(mode="after")
    def _one_input_and_something_to_check(self) -> Case:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("a case has a prompt or messages (one of them)")
        if self.expected is None and not self.assertions:
            raise ValueError("a case needs expected or assert")
        return self

    def checks(self) -> list[Assertion]:
        """Every assertion of the case, ``expected`` first."""
        found = [Assertion(type="contains", value=self.expected)] if self.expected else []
        return found + list(self.assertions)

    def chat_messages(self, system: str | None) -> list[dict[str, Any]]:
        """The case's messages with its variables filled in (and the suite's system prompt)."""
        if self.messages is not None:
            messages = [{**m, "content": fill(str(m.get("content", "")), self.vars)}
                        for m in self.messages]
        else:
            messages = [{"role": "user", "content": fill(self.prompt or "", self.vars)}]
        if system and not any(m.get("role") == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": system})
        return messages

    def question(self) -> str:
        """The case's last user message, for a judge and for reports."""
        users = [m for m in self.chat_messages(None) if m.get("role") == "user"]
        return str(users[-1]["content"]) if users else ""


class Thresholds(BaseModel):
    """When a run fails the gate: a pass rate under ``min_pass_rate``, or a drop from the
    baseline larger than ``max_drop`` that is not noise at ``confidence``."""

    model_config = ConfigDict(extra="forbid")

    min_pass_rate: float = Field(0.0, ge=0, le=1)
    max_drop: float = Field(0.0, ge=0, le=1)
    confidence: float = Field(0.95, gt=0.5, lt=1)


class Judge(BaseModel):
    """The model that grades ``model_graded`` assertions, served through Stoker too."""

    model_config = ConfigDict(extra="forbid")

    model: str
    max_tokens: int = Field(96, ge=1, le=4096)


class Suite(BaseModel):
    """A whole suite, its includes resolved."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    model: str = "default"
    tier: str | None = None
    system: str | None = None
    #: Fields of the chat request body (temperature, max_tokens, seed, stop, …).
    sampling: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0.0,
                                                              "max_tokens": 64})
    repeat: int = Field(1, ge=1, le=100)
    judge: Judge | None = None
    thresholds: Thresholds = Field(default_factory=Thresholds)
    include: list[str] = Field(default_factory=list)
    cases_file: str | None = None
    cases: list[Case] = Field(default_factory=list)

    @model_validator(mode="after")
    def _graded_needs_a_judge(self) -> Suite:
        graded = any(a.type == "model_graded" for c in self.cases for a in c.assertions)
        if graded and self.judge is None:
            raise ValueError("model_graded assertions need the suite's judge")
        return self


def fill(template: str, variables: dict[str, Any]) -> str:
    """``template`` with each ``{{name}}`` replaced by its variable (an unknown name is an
    error)."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise SuiteError(f"variable {name!r} is used but not set in the case's vars")
        return str(variables[name])

    return _VARIABLE.sub(one, template)


def load_suite(path: Path, *, seen: frozenset[Path] = frozenset()) -> Suite:
    """The suite at ``path`` with its ``cases_file`` read and its includes' cases added
    (paths relative to the suite file). Raises SuiteError naming the problem."""
    path = path.resolve()
    if path in seen:
        raise SuiteError(f"{path} includes itself (through {' → '.join(map(str, seen))})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SuiteError(f"cannot read {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: a suite is a YAML mapping")
    raw = _as_suite(raw, path)
    if raw.get("cases_file"):
        raw["cases"] = [*raw.get("cases", []), *_cases_file(path.parent / raw["cases_file"])]
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as exc:
        raise SuiteError(f"{path}: {_problem(exc)}") from None
    cases = list(suite.cases)
    for included in suite.include:
        cases += load_suite(path.parent / included, seen=seen | {path}).cases
    ids = [c.id for c in cases]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise SuiteError(f"{path}: case ids must be unique; repeated: {', '.join(repeated)}")
    if not cases:
        raise SuiteError(f"{path}: the suite has no cases")
    for case in cases:  # every variable is set: fail now, not after the run
        case.chat_messages(suite.system)
    return suite.model_copy(update={"cases": cases})


def _as_suite(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """A promptfoo config or an lm-eval task as the suite it describes; a suite as it is."""
    from stoker.evals.lm_eval_task import is_lm_eval_task, suite_from_lm_eval
    from stoker.evals.promptfoo import is_promptfoo, suite_from_promptfoo

    if is_promptfoo(raw):
        return suite_from_promptfoo(raw, path)
    if is_lm_eval_task(raw):
        return suite_from_lm_eval(raw, path)
    return raw


def _cases_file(path: Path) -> list[Any]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError) as exc:
        raise SuiteError(f"cannot read the cases file {path}: {exc}") from None


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
