"""The `stoker` command against a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, prompts

pytestmark = pytest.mark.e2e


def stoker(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stoker.cli", *args, "--server", server.url],
                          capture_output=True, text=True, timeout=300, check=False)


def test_cli_round_trip(make_server: Callable[..., Server], tmp_path: Path) -> None:
    server = make_server()
    server.start(runners=1)
    jobfile = tmp_path / "job.jsonl"
    jobfile.write_text("".join(json.dumps(p) + "\n" for p in prompts(12)))

    submitted = stoker(server, "submit", str(jobfile), "--tier", "regression", "--wait",
                       "--json")
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert (job["status"], job["tier"], job["request_counts"]["succeeded"]) == (
        "completed", "regression", 12)

    status = json.loads(stoker(server, "status", job["id"], "--json").stdout)
    assert status["id"] == job["id"]

    out = stoker(server, "results", job["id"])
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert [x["custom_id"] for x in lines] == [f"req-{i}" for i in range(12)]

    runners = json.loads(stoker(server, "runners", "--json").stdout)
    assert [r["state"] for r in runners] == ["idle"]
    assert runners[0]["pid"] in server.runner_pids

    human = stoker(server, "status", job["id"])
    assert "completed" in human.stdout

    keyed = ("submit", str(jobfile), "--idempotency-key", "repo@abc:suite", "--json",
             "--no-cache", "--concurrency-group", "pr-1")
    first = json.loads(stoker(server, *keyed).stdout)
    repeat = json.loads(stoker(server, *keyed).stdout)
    assert first["id"] == repeat["id"] != job["id"]
    newer = json.loads(stoker(server, "submit", str(jobfile), "--json", "--concurrency-group",
                              "pr-1", "--cancel-in-progress").stdout)
    superseded = json.loads(stoker(server, "status", first["id"], "--json").stdout)
    assert newer["id"] != first["id"]
    # Either it finished before the newer push arrived, or the newer push superseded it.
    assert (superseded["status"] == "completed"
            or superseded["superseded_by"] == newer["id"]), superseded


def test_cli_errors_are_one_clear_line(make_server: Callable[..., Server],
                                       tmp_path: Path) -> None:
    server = make_server()
    server.start(runners=1)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"custom_id": "a"}\n')
    refused = stoker(server, "submit", str(bad))
    assert refused.returncode == 1
    assert "line 1" in refused.stderr
    assert "Traceback" not in refused.stderr
    missing = stoker(server, "status", "job_nope")
    assert missing.returncode == 1
    assert "no job" in missing.stderr
    unreadable = stoker(server, "submit", str(tmp_path / "absent.jsonl"))
    assert unreadable.returncode == 1
    assert "cannot read" in unreadable.stderr


def test_cli_cancel(make_server: Callable[..., Server], tmp_path: Path) -> None:
    server = make_server()
    server.start(runners=1)
    jobfile = tmp_path / "job.jsonl"
    jobfile.write_text("".join(json.dumps(p) + "\n" for p in prompts(400, max_tokens=64)))
    job = json.loads(stoker(server, "submit", str(jobfile), "--json").stdout)
    cancelled = json.loads(stoker(server, "cancel", job["id"], "--json").stdout)
    assert cancelled["status"] in ("cancelling", "cancelled")
    assert cancelled["request_counts"]["cancelled"] > 0
    final = server.wait_job(job["id"])
    counts = final["request_counts"]
    assert counts["succeeded"] + counts["cancelled"] + counts["failed"] == 400


@pytest.mark.parametrize("args", [["runners"], ["status", "job_x"], ["report"]])
def test_an_unreachable_server_is_one_line_not_a_traceback(tmp_path: Path,
                                                          args: list[str]) -> None:
    jobfile = tmp_path / "job.jsonl"
    jobfile.write_text(json.dumps(prompts(1)[0]) + "\n")
    for command in (args, ["submit", str(jobfile)]):
        done = subprocess.run([sys.executable, "-m", "stoker.cli", *command, "--server",
                               "http://127.0.0.1:9"], capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert "cannot reach the Stoker server at http://127.0.0.1:9" in line


def test_command_run_waits_for_a_command_job_and_logs_show_its_output(
        make_server: Callable[..., Server]) -> None:
    server = make_server(commands={"enabled": True, "log_interval_s": 0.2},
                         batching={"max_batch_size": 4, "max_wait_ms": 0, "continuous": False})
    server.start(runners=1)

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "stoker.cli", "command", *args],
                              capture_output=True, text=True, timeout=300, check=False)

    code = "import os; print(os.environ['GREETING'], os.environ['STOKER_JOB_ID'])"
    ran = command("run", "--server", server.url, "--env", "GREETING=hello", "--wait", "--json",
                  "--", sys.executable, "-c", code)
    assert ran.returncode == 0, ran.stderr
    job = json.loads(ran.stdout)
    assert (job["status"], job["request_counts"]["succeeded"]) == ("completed", 1)
    logs = command("logs", job["id"], "--server", server.url)
    assert logs.returncode == 0, logs.stderr
    assert f"hello {job['id']}" in logs.stdout
    assert "=== run 1 on runner" in logs.stdout

    malformed = command("run", "--server", server.url, "--env", "GREETING", "--", "true")
    assert malformed.returncode == 1
    assert "NAME=VALUE" in malformed.stderr
    refused = command("run", "--server", server.url, "--env", "CUDA_VISIBLE_DEVICES=1", "--",
                      "true")
    assert refused.returncode == 1
    assert "CUDA_VISIBLE_DEVICES" in refused.stderr
