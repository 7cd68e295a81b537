"""A promptfoo config read as a suite: each prompt with each test becomes a case, its
assertions ours, its one provider the model. What has no counterpart here (JavaScript or
Python assertions, embedding similarity, several providers compared side by side) is refused
by name, so that no check is silently dropped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from stoker.evals.suite import SuiteError

#: promptfoo assertion → ours, and whether promptfoo compares case-sensitively.
_SAME_KIND: dict[str, tuple[str, bool]] = {
    "equals": ("exact", True), "contains": ("contains", True),
    "icontains": ("contains", False), "not-contains": ("not_contains", True),
    "not-icontains": ("not_contains", False), "regex": ("regex", True),
}
#: Provider fields that are sampling parameters of a chat request.
_SAMPLING = ("temperature", "max_tokens", "top_p", "seed", "stop", "presence_penalty",
             "frequency_penalty")


def is_promptfoo(raw: dict[str, Any]) -> bool:
    """Whether a YAML mapping is a promptfoo config (prompts and tests, no suite cases)."""
    return "prompts" in raw and "tests" in raw and "cases" not in raw


def suite_from_promptfoo(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """The suite (as a raw mapping) that runs the promptfoo config ``raw`` read from
    ``path``."""
    model, sampling = _provider(raw.get("providers"))
    prompts = [_prompt(p, path.parent) for p in _listed(raw["prompts"], "prompts")]
    default = raw.get("defaultTest") or {}
    tests = raw["tests"]
    if not isinstance(tests, list):
        raise SuiteError(f"{path}: tests must be listed in the config (tests from a file or "
                         "a generator are not read)")
    judge = _judge(default) or model
    cases = []
    for i, test in enumerate(tests, start=1):
        if not isinstance(test, dict):
            raise SuiteError(f"{path}: tests[{i - 1}] is not a mapping")
        variables = {**(default.get("vars") or {}), **(test.get("vars") or {})}
        checks = [_assertion(a) for a in [*(default.get("assert") or []),
                                          *(test.get("assert") or [])]]
        for j, prompt in enumerate(prompts, start=1):
            case: dict[str, Any] = {"id": f"test-{i}" + (f"-prompt-{j}" if len(prompts) > 1
                                                        else ""),
                                    "vars": variables, "assert": checks}
            case.update(prompt)
            cases.append(case)
    graded = any(a["type"] == "model_graded" for c in cases for a in c["assert"])
    return {"name": _name(raw.get("description"), path), "model": model,
            "sampling": sampling, "cases": cases,
            **({"judge": {"model": judge}} if graded else {})}


def _listed(value: Any, what: str) -> list[Any]:
    if isinstance(value, list) and value:
        return value
    if isinstance(value, str):
        return [value]
    raise SuiteError(f"promptfoo {what} must be a non-empty list")


def _provider(providers: Any) -> tuple[str, dict[str, Any]]:
    """The model and sampling parameters of the config's one provider."""
    listed = _listed(providers, "providers") if providers is not None else []
    if len(listed) != 1:
        raise SuiteError("a promptfoo config run through Stoker names exactly one provider "
                         f"(it has {len(listed)}); its model is what the suite runs "
                         "(or pass --model)")
    provider = listed[0]
    ident = provider if isinstance(provider, str) else str(provider.get("id", ""))
    config = {} if isinstance(provider, str) else dict(provider.get("config") or {})
    sampling = {k: config[k] for k in _SAMPLING if k in config}
    sampling.setdefault("temperature", 0.0)
    return ident.split(":")[-1] or "default", sampling


def _judge(default: dict[str, Any]) -> str | None:
    provider = (default.get("options") or {}).get("provider")
    if provider is None:
        return None
    ident = provider if isinstance(provider, str) else str(provider.get("id", ""))
    return ident.split(":")[-1] or None


def _prompt(prompt: Any, base: Path) -> dict[str, Any]:
    """A prompt as a case's ``prompt`` or ``messages`` (promptfoo takes a JSON chat array
    too, and ``file://`` prompts)."""
    text = prompt.get("raw") if isinstance(prompt, dict) else prompt
    if not isinstance(text, str):
        raise SuiteError("each promptfoo prompt is a string (or a mapping with raw)")
    if text.startswith("file://"):
        try:
            text = (base / text.removeprefix("file://")).read_text(encoding="utf-8")
        except OSError as exc:
            raise SuiteError(f"cannot read the prompt file: {exc}") from None
    try:
        parsed = json.loads(text)
    except ValueError:
        return {"prompt": text}
    if isinstance(parsed, list) and all(isinstance(m, dict) and "role" in m for m in parsed):
        return {"messages": parsed}
    return {"prompt": text}


def _assertion(given: dict[str, Any]) -> dict[str, Any]:
    """promptfoo's assertion as ours; refused by name where there is no counterpart."""
    kind, value = str(given.get("type", "")), given.get("value")
    if kind in _SAME_KIND:
        ours, sensitive = _SAME_KIND[kind]
        return {"type": ours, "value": value, "case_sensitive": sensitive}
    if kind == "starts-with":
        return {"type": "regex", "value": "^" + re.escape(str(value)), "case_sensitive": True}
    if kind == "contains-any":
        pattern = "|".join(re.escape(str(v)) for v in value or [])
        return {"type": "regex", "value": pattern, "case_sensitive": True}
    if kind == "is-json":
        return {"type": "json_schema", "value": value} if value else {"type": "json_valid"}
    if kind == "llm-rubric":
        return {"type": "model_graded", "rubric": str(value)}
    raise SuiteError(
        f"promptfoo assertion type {kind!r} has no counterpart in Stoker's scorers (equals, "
        "contains, icontains, not-contains, not-icontains, regex, starts-with, contains-any, "
        "is-json, llm-rubric); JavaScript and Python assertions run only in promptfoo itself")


def _name(description: Any, path: Path) -> str:
    text = description if isinstance(description, str) and description else path.stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:100] or "promptfoo"
