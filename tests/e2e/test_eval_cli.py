"""`stoker eval run` end to end, as CI runs it: against a real server with SmolLM2 (where the
answers must be right) and the tiny model (where only the mechanics matter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from stoker.core.callbacks import signature_matches
from stoker.evals.scorers import score_judged
from tests.callback_receiver import callback_receiver
from tests.e2e.conftest import Server, smollm2_and_tiny_server, wait_until

pytestmark = pytest.mark.timeout(600)

TOKEN = "evals-team-token"
WEBHOOK_SECRET = "evals-webhook-secret"
EXAMPLES = Path(__file__).parents[2] / "examples" / "evals"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path,
           smollm2: Path) -> Iterator[Server]:
    made = smollm2_and_tiny_server(
        tmp_path_factory.mktemp("evals"), smollm2, tiny_model_dir,
        batching={"max_batch_size": 16, "max_wait_ms": 20},
        # The shipped smoke suite has 29 cases; the built-in smoke tier takes 10.
        tiers={"smoke": {"priority": 80, "max_prompts": 64}},
        teams={"evals": {"token": TOKEN, "webhook_secret": WEBHOOK_SECRET}},
        runner_token="evals-runner-token",
        # The test's callback receiver listens on this machine.
        callbacks={"allowed_networks": ["127.0.0.0/8"]})
    made.start(runners=1, expect=2)
    yield made
    made.kill_everything()


def eval_run(server: Server, workdir: Path, *args: str, env: dict[str, str] | None = None,
             wait: bool = True) -> Any:
    command = [sys.executable, "-m", "stoker.cli", "eval", "run", *args,
               "--server", server.url, "--report", str(workdir / "report.md"),
               "--json-report", str(workdir / "report.json")]
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("GITHUB_", "GITLAB_", "CI_"))}
    environment.update({"STOKER_TOKEN": TOKEN, **(env or {})})
    if not wait:
        return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=environment, capture_output=True, text=True,
                          timeout=500, check=False)


def test_the_smoke_suite_passes_on_smollm2_and_its_report_says_so(server: Server,
                                                                  tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    done = eval_run(server, tmp_path, str(EXAMPLES / "smollm2_smoke.yaml"), "--name", "main",
                    env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["samples"] == 29
    assert report["pass_rate"] >= 0.5  # the suite's own minimum (SmolLM2 scores 19/29)
    assert report["gate"]["passed"] is True
    assert report["cost_usd"] is not None
    text = (tmp_path / "report.md").read_text()
    assert text.startswith("## ✅ Eval `smollm2-smoke` on `smollm2` (smoke tier)")
    assert f"({report['passed']}/29;" in text
    assert summary.read_text() == text  # the same Markdown goes to the step summary
    france = next(c for c in report["cases"] if c["id"] == "fact/capital-france")
    assert france["passed"] == 1
    assert "Paris" in france["answers"][0]["text"]


def test_a_changed_prompt_regresses_against_the_baseline_and_fails(server: Server,
                                                                   tmp_path: Path) -> None:
    suite = {"name": "capitals", "model": "smollm2", "tier": "smoke",
             "sampling": {"temperature": 0, "max_tokens": 24},
             "thresholds": {"max_drop": 0.2},
             "cases": [{"id": c.replace(" ", "-"), "prompt": "What is the capital of {{c}}?",
                        "vars": {"c": c},
                        "expected": city}
                       for c, city in [("France", "Paris"), ("Germany", "Berlin"),
                                       ("Italy", "Rome"), ("Japan", "Tokyo"),
                                       ("the United Kingdom", "London"),
                                       ("Russia", "Moscow"), ("Egypt", "Cairo"),
                                       ("China", "Beijing"), ("Greece", "Athens"),
                                       ("Austria", "Vienna")]]}
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(suite))
    good = eval_run(server, tmp_path, str(tmp_path / "good.yaml"), "--name", "good-run")
    assert good.returncode == 0, good.stderr
    good_report = json.loads((tmp_path / "report.json").read_text())
    # Ten cases: enough that a large drop is told from noise (see stoker.evals.stats).
    assert good_report["passed"] >= 7
    # The "change": a prompt that no longer asks the question.
    for case in suite["cases"]:
        case["prompt"] = "Write one word about the weather in {{c}}."
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(suite))
    bad = eval_run(server, tmp_path, str(tmp_path / "bad.yaml"), "--baseline", "good-run")
    assert bad.returncode == 1, bad.stderr
    assert "fell" in bad.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["baseline"]["ref"].startswith("good-run (job_")
    assert report["baseline"]["passed"] == good_report["passed"]
    assert report["passed"] < report["baseline"]["passed"]
    text = (tmp_path / "report.md").read_text()
    assert text.startswith("## ❌")
    assert "### Changed since the baseline" in text


def test_a_newer_commit_supersedes_the_older_run_of_its_pull_request(server: Server,
                                                                     tmp_path: Path) -> None:
    suite = {"name": "slow", "model": "tiny-llama", "repeat": 40,
             "sampling": {"temperature": 1.0, "max_tokens": 48},
             "cases": [{"id": f"c{i}", "prompt": f"story {i}", "expected": "x"}
                       for i in range(10)]}
    (tmp_path / "slow.yaml").write_text(yaml.safe_dump(suite))
    ci = {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/app",
          "GITHUB_REF": "refs/pull/9/merge"}
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    older = eval_run(server, tmp_path / "old", str(tmp_path / "slow.yaml"),
                     env={**ci, "GITHUB_SHA": "1111111"}, wait=False)
    first = wait_until(lambda: _eval_jobs(server, "slow"), timeout_s=60,
                       what="the older run's job")[0]
    assert first["status"] in ("queued", "running")
    newer = eval_run(server, tmp_path / "new", str(tmp_path / "slow.yaml"),
                     env={**ci, "GITHUB_SHA": "2222222"}, wait=False)
    _, said = older.communicate(timeout=300)
    assert older.returncode == 3, said
    assert "superseded" in said
    newer.kill()
    newer.communicate()
    jobs = _eval_jobs(server, "slow")
    assert jobs[-1]["id"] == first["id"]  # newest first: the older run's job is the last
    assert jobs[-1]["superseded_by"] == jobs[0]["id"]


def write_tiny_suite(path: Path, name: str) -> None:
    """Three cases on the tiny model, where only the mechanics matter."""
    path.write_text(yaml.safe_dump({
        "name": name, "model": "tiny-llama", "sampling": {"max_tokens": 4},
        "cases": [{"id": f"c{i}", "prompt": f"say {i}", "expected": "x"} for i in range(3)]}))


def test_an_eval_run_calls_back_signed_when_its_job_finishes(server: Server,
                                                             tmp_path: Path) -> None:
    write_tiny_suite(tmp_path / "hooked.yaml", "hooked")
    with callback_receiver() as receiver:
        done = eval_run(server, tmp_path, str(tmp_path / "hooked.yaml"),
                        "--callback-url", receiver.url)
        assert done.returncode in (0, 1), done.stderr  # the tiny model's text does not matter
        [delivery] = wait_until(lambda: receiver.deliveries, timeout_s=30,
                                what="the callback")
    assert signature_matches(WEBHOOK_SECRET.encode(), delivery.body,
                             delivery.headers["X-Stoker-Signature"])
    job = json.loads(delivery.body)["job"]
    assert job["metadata"]["eval_suite"] == "hooked"
    assert (job["status"], job["request_counts"]["finished"]) == ("completed", 3)


def test_no_wait_submits_and_a_later_run_of_the_commit_scores_that_job(server: Server,
                                                                       tmp_path: Path) -> None:
    write_tiny_suite(tmp_path / "later.yaml", "later")
    ci = {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/app", "GITHUB_SHA": "3333333",
          "GITHUB_REF": "refs/heads/main"}
    submitted = eval_run(server, tmp_path, str(tmp_path / "later.yaml"), "--no-wait", env=ci)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert job_id.startswith("job_")
    assert not (tmp_path / "report.json").exists()
    scored = eval_run(server, tmp_path, str(tmp_path / "later.yaml"), env=ci)
    assert scored.returncode in (0, 1), scored.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["job_ids"] == [job_id]  # the same job, not the suite queued again
    assert len(_eval_jobs(server, "later")) == 1


def test_the_composite_actions_eval_step_runs_as_github_would_run_it(server: Server,
                                                                     tmp_path: Path) -> None:
    action = yaml.safe_load((EXAMPLES.parent / "ci" / "stoker-eval" / "action.yml").read_text())
    [step] = [s for s in action["runs"]["steps"] if "stoker eval run" in s.get("run", "")]
    write_tiny_suite(tmp_path / "ci.yaml", "from-the-action")
    inputs = {"server": server.url, "token": TOKEN, "suite": str(tmp_path / "ci.yaml"),
              "tier": "smoke", "baseline": "", "name": "nightly", "timeout-s": "300"}
    env = {k: v.replace("${{ inputs.", "").rstrip("} ").strip() for k, v in step["env"].items()}
    env = {k: inputs[v] for k, v in env.items()}  # what GitHub fills in from the inputs
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    done = subprocess.run(["bash", "-c", step["run"]], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, check=False,
                          env={"PATH": path, "HOME": str(tmp_path), **env})
    assert done.returncode in (0, 1), done.stderr  # a verdict, whichever
    report = json.loads((tmp_path / "stoker-eval.json").read_text())
    assert (report["suite"], report["tier"], report["name"]) == ("from-the-action", "smoke",
                                                                 "nightly")


@pytest.mark.parametrize(("config", "model", "cases"), [
    ("promptfoo/promptfooconfig.yaml", "tiny-llama", ["test-1", "test-2"]),
    ("lm_eval/stoker_smoke.yaml", "smollm2", ["stoker_smoke/0", "stoker_smoke/1",
                                              "stoker_smoke/2"]),
])
def test_promptfoo_and_lm_eval_examples_run_as_suites(server: Server, tmp_path: Path,
                                                      config: str, model: str,
                                                      cases: list[str]) -> None:
    done = eval_run(server, tmp_path, str(EXAMPLES.parent / config), "--model", model)
    assert done.returncode in (0, 1), done.stderr  # scored: a verdict either way
    report = json.loads((tmp_path / "report.json").read_text())
    assert [c["id"] for c in report["cases"]] == cases
    assert report["model"] == model
    assert all(c["answers"][0]["text"] is not None for c in report["cases"])


def _eval_jobs(server: Server, suite: str) -> list[dict[str, Any]]:
    found = httpx.get(f"{server.url}/api/jobs", headers={"Authorization": f"Bearer {TOKEN}"},
                      params={"limit": 100}, timeout=10).json()["data"]
    return [j for j in found if j["metadata"].get("eval_suite") == suite]


def test_a_model_graded_case_keeps_the_rubric_verdict_and_judges_raw_answer(
        server: Server, tmp_path: Path) -> None:
    suite = {"name": "graded", "model": "smollm2", "sampling": {"temperature": 0,
                                                                "max_tokens": 24},
             "judge": {"model": "tiny-llama", "max_tokens": 8},
             "cases": [{"id": "france", "prompt": "What is the capital of France?",
                        "assert": [{"type": "model_graded",
                                    "rubric": "The answer names Paris."}]}]}
    (tmp_path / "graded.yaml").write_text(yaml.safe_dump(suite))
    done = eval_run(server, tmp_path, str(tmp_path / "graded.yaml"))
    assert done.returncode == 0, done.stderr  # no thresholds: the gate passes either way
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["job_ids"]) == 2  # the cases' job, then the judge's (served by Stoker)
    (answer,) = report["cases"][0]["answers"]
    (judged,) = answer["judge"]
    assert isinstance(judged, str)  # the judge's raw answer, kept
    (score,) = answer["scores"]
    assert score["passed"] == score_judged(judged).passed  # the verdict is the judge's
