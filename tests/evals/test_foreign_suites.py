"""promptfoo configs and lm-eval tasks read as suites: the shipped examples, each mapping, and
each refusal (nothing silently dropped)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from stoker.evals.suite import SuiteError, load_suite

EXAMPLES = Path(__file__).parents[2] / "examples"


def write(tmp_path: Path, raw: dict[str, Any], name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def promptfoo(**extra: Any) -> dict[str, Any]:
    return {"providers": ["openai:chat:smollm2"], "prompts": ["Say {{thing}}"],
            "tests": [{"vars": {"thing": "hi"}, "assert": [{"type": "icontains",
                                                             "value": "hi"}]}], **extra}


def test_the_promptfoo_example_is_a_suite() -> None:
    suite = load_suite(EXAMPLES / "promptfoo" / "promptfooconfig.yaml")
    assert (suite.name, suite.model) == ("smoke-eval-through-Stoker", "tiny-llama")
    assert suite.sampling == {"temperature": 0, "max_tokens": 16}
    assert [c.id for c in suite.cases] == ["test-1", "test-2"]
    assert suite.cases[0].chat_messages(None) == [
        {"role": "user", "content": "Answer in one word: What is the capital of France?"}]
    [check] = suite.cases[0].checks()
    assert (check.type, check.value, check.case_sensitive) == ("regex", "\\S", True)


def test_promptfoo_assertions_map_to_the_scorers(tmp_path: Path) -> None:
    asserts = [{"type": "equals", "value": "Hi"}, {"type": "contains", "value": "H"},
               {"type": "not-icontains", "value": "bye"}, {"type": "starts-with", "value": "H."},
               {"type": "contains-any", "value": ["a", "b+"]}, {"type": "is-json"},
               {"type": "is-json", "value": {"type": "object"}},
               {"type": "llm-rubric", "value": "is polite"}]
    raw = promptfoo(tests=[{"vars": {"thing": "x"}, "assert": asserts}],
                    defaultTest={"options": {"provider": "openai:chat:judge-model"}})
    suite = load_suite(write(tmp_path, raw))
    got = [(a.type, a.value, a.case_sensitive) for a in suite.cases[0].checks()]
    assert got == [("exact", "Hi", True), ("contains", "H", True),
                   ("not_contains", "bye", False), ("regex", "^H\\.", True),
                   ("regex", "a|b\\+", True), ("json_valid", None, False),
                   ("json_schema", {"type": "object"}, False), ("model_graded", None, False)]
    assert suite.cases[0].checks()[-1].rubric == "is polite"
    assert suite.judge is not None
    assert suite.judge.model == "judge-model"


def test_promptfoo_default_test_and_several_prompts_make_every_pair(tmp_path: Path) -> None:
    raw = promptfoo(prompts=["A {{thing}}", '[{"role": "system", "content": "terse"}, '
                                           '{"role": "user", "content": "B {{thing}}"}]'],
                    defaultTest={"vars": {"thing": "default"},
                                 "assert": [{"type": "regex", "value": "."}]},
                    tests=[{"assert": [{"type": "contains", "value": "x"}]},
                           {"vars": {"thing": "own"}, "assert": []}])
    suite = load_suite(write(tmp_path, raw))
    assert [c.id for c in suite.cases] == ["test-1-prompt-1", "test-1-prompt-2",
                                           "test-2-prompt-1", "test-2-prompt-2"]
    assert suite.cases[1].chat_messages(None) == [
        {"role": "system", "content": "terse"}, {"role": "user", "content": "B default"}]
    assert suite.cases[2].question() == "A own"
    assert [a.type for a in suite.cases[0].checks()] == ["regex", "contains"]


@pytest.mark.parametrize(("change", "says"), [
    ({"tests": [{"vars": {"thing": "x"},
                 "assert": [{"type": "javascript", "value": "output.length > 0"}]}]},
     "'javascript' has no counterpart"),
    ({"tests": [{"vars": {"thing": "x"}, "assert": [{"type": "similar", "value": "hi"}]}]},
     "'similar' has no counterpart"),
    ({"providers": ["openai:chat:a", "openai:chat:b"]}, "exactly one provider"),
    ({"tests": "file://tests.csv"}, "tests must be listed"),
])
def test_what_promptfoo_checks_that_stoker_cannot_is_refused(tmp_path: Path,
                                                             change: dict[str, Any],
                                                             says: str) -> None:
    with pytest.raises(SuiteError, match=says):
        load_suite(write(tmp_path, promptfoo(**change)))


def test_the_lm_eval_example_task_is_a_suite() -> None:
    suite = load_suite(EXAMPLES / "lm_eval" / "stoker_smoke.yaml")
    docs = [json.loads(x) for x in (EXAMPLES / "lm_eval" / "smoke.jsonl").read_text().split("\n")
            if x.strip()]
    assert suite.name == "stoker_smoke"
    assert suite.sampling == {"temperature": 0.0, "max_tokens": 16, "stop": ["\n"]}
    assert [c.question() for c in suite.cases] == [f"Q: {d['question']}\nA:" for d in docs]
    assert [(a.type, a.value, a.case_sensitive) for c in suite.cases for a in c.checks()] == [
        ("exact", d["answer"], True) for d in docs]


def lm_eval_task(data: Path, **extra: Any) -> dict[str, Any]:
    return {"task": "t", "dataset_path": "json", "dataset_kwargs": {"data_files": {
        "test": str(data)}}, "test_split": "test", "output_type": "generate_until",
        "doc_to_text": "{{ q | upper }}?", "doc_to_target": "a",
        "metric_list": [{"metric": "exact_match", "ignore_case": True}], **extra}


def test_an_lm_eval_task_renders_jinja_and_reads_field_targets(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"q": "one", "a": "1"}\n{"q": "two", "a": "2"}\n')
    suite = load_suite(write(tmp_path, lm_eval_task(tmp_path / "d.jsonl",
                                                    description="Answer with a digit.")))
    assert [c.question() for c in suite.cases] == ["ONE?", "TWO?"]
    assert [c.checks()[0].value for c in suite.cases] == ["1", "2"]
    assert not suite.cases[0].checks()[0].case_sensitive
    assert suite.system == "Answer with a digit."


@pytest.mark.parametrize(("change", "says"), [
    ({"output_type": "multiple_choice"}, "log-probabilities"),
    ({"dataset_path": "gsm8k"}, "Hugging Face hub"),
    ({"metric_list": [{"metric": "bleu"}]}, "exact_match only"),
    ({"filter_list": [{"name": "x"}]}, "filter_list"),
    ({"doc_to_text": "{{ missing }}"}, "cannot render"),
    ({"doc_to_text": "{{ q.__class__.__mro__ }}"}, "cannot render"),
])
def test_what_an_lm_eval_task_needs_that_stoker_cannot_do_is_refused(
        tmp_path: Path, change: dict[str, Any], says: str) -> None:
    (tmp_path / "d.jsonl").write_text('{"q": "one", "a": "1"}\n')
    with pytest.raises(SuiteError, match=says):
        load_suite(write(tmp_path, lm_eval_task(tmp_path / "d.jsonl", **change)))


def test_the_log_likelihood_task_of_the_client_tests_is_refused_with_the_way_to_run_it() -> None:
    task = Path(__file__).parents[1] / "e2e" / "lm_eval_tasks" / "stoker_capitals.yaml"
    with pytest.raises(SuiteError, match=r"examples/lm_eval/run\.sh"):
        load_suite(task)
