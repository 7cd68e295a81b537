"""An lm-evaluation-harness task read as a suite: each document of its local dataset becomes a
case (``doc_to_text`` rendered with Jinja, as lm-eval does), ``generation_kwargs`` the
sampling, ``exact_match`` against ``doc_to_target`` the check.

Generation tasks on a local JSON/JSONL dataset only: a hub dataset would need a download, and a
log-likelihood (multiple-choice) task is scored from token probabilities, which lm-eval itself
does against Stoker's /v1/completions (see examples/lm_eval). Both are refused by name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from stoker.evals.suite import SuiteError


def is_lm_eval_task(raw: dict[str, Any]) -> bool:
    """Whether a YAML mapping is an lm-eval task config."""
    return "task" in raw and "doc_to_text" in raw


def suite_from_lm_eval(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """The suite (as a raw mapping) that runs the lm-eval task ``raw`` read from ``path``."""
    output_type = raw.get("output_type", "generate_until")
    if output_type != "generate_until":
        raise SuiteError(f"{path}: lm-eval {output_type} tasks are scored from token "
                         "log-probabilities; run them with lm_eval itself against Stoker's "
                         "/v1/completions (examples/lm_eval/run.sh). stoker eval run takes "
                         "generate_until tasks")
    if raw.get("filter_list"):
        raise SuiteError(f"{path}: lm-eval filter_list is not applied by stoker eval run; "
                         "drop it or run the task with lm_eval")
    sensitive = _exact_match_case(raw.get("metric_list") or [{"metric": "exact_match"}], path)
    docs = _documents(raw, path)
    task = str(raw["task"])
    cases = []
    for i, doc in enumerate(docs):
        target = _render(raw.get("doc_to_target", ""), doc, path)
        cases.append({"id": f"{task}/{i}", "prompt": _render(raw["doc_to_text"], doc, path),
                      "assert": [{"type": "exact", "value": target,
                                  "case_sensitive": sensitive}]})
    return {"name": task, "sampling": _sampling(raw.get("generation_kwargs") or {}),
            "cases": cases, **({"system": raw["description"]} if raw.get("description")
                               else {})}


def _exact_match_case(metrics: list[dict[str, Any]], path: Path) -> bool:
    """Whether exact_match compares case-sensitively (its ``ignore_case``)."""
    names = [m.get("metric") for m in metrics]
    if names != ["exact_match"]:
        raise SuiteError(f"{path}: stoker eval run scores lm-eval tasks by exact_match only; "
                         f"this one asks for {', '.join(map(str, names))}")
    options = set(metrics[0]) - {"metric", "aggregation", "higher_is_better", "ignore_case"}
    if options:
        raise SuiteError(f"{path}: exact_match options {', '.join(sorted(options))} are not "
                         "supported (ignore_case is)")
    return not metrics[0].get("ignore_case", False)


def _documents(raw: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    if raw.get("dataset_path") != "json":
        raise SuiteError(f"{path}: dataset {raw.get('dataset_path')!r} would be downloaded "
                         "from the Hugging Face hub; stoker eval run reads local JSON/JSONL "
                         "datasets (dataset_path: json with data_files)")
    files = (raw.get("dataset_kwargs") or {}).get("data_files")
    split = raw.get("test_split") or raw.get("validation_split") or "train"
    named = files.get(split) if isinstance(files, dict) else files
    if not isinstance(named, str):
        raise SuiteError(f"{path}: dataset_kwargs.data_files names no file for the "
                         f"{split!r} split")
    found = _locate(named, path)
    try:
        lines = found.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError) as exc:
        raise SuiteError(f"cannot read the task's dataset {found}: {exc}") from None


def _locate(named: str, path: Path) -> Path:
    """The dataset file: as lm-eval finds it (from the working directory), else beside the
    task or in a folder above it (a task written for the repository root)."""
    candidates = [Path(named), *(folder / named for folder in path.resolve().parents)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise SuiteError(f"{path}: the dataset file {named!r} is not found from the working "
                     "directory nor from the task's folder or those above it")


def _render(template: Any, doc: dict[str, Any], path: Path) -> str:
    """A doc_to_* field: a Jinja template, or the name of a field of the document."""
    text = str(template)
    if "{{" not in text and "{%" not in text:
        if text in doc:
            return str(doc[text])
        raise SuiteError(f"{path}: {text!r} is neither a template nor a field of the dataset")
    # Sandboxed: a task file may come from a pull request. Not escaped: a prompt is not HTML.
    jinja = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    try:
        return jinja.from_string(text).render(**doc)
    except jinja2.TemplateError as exc:
        raise SuiteError(f"{path}: cannot render {text!r}: {exc}") from None


def _sampling(kwargs: dict[str, Any]) -> dict[str, Any]:
    sampling: dict[str, Any] = {"temperature": 0.0, "max_tokens": 256}
    if kwargs.get("do_sample") and "temperature" in kwargs:
        sampling["temperature"] = kwargs["temperature"]
    if "max_gen_toks" in kwargs:
        sampling["max_tokens"] = kwargs["max_gen_toks"]
    until = kwargs.get("until")
    if until:
        sampling["stop"] = [until] if isinstance(until, str) else list(until)[:4]
    return sampling
