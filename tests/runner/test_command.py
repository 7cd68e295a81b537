"""Running a command job on a runner: real processes, signalled, checkpointed and resumed."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil
import pytest

from stoker.core.commands import CommandSpec, RunEnd, StopReason
from stoker.runner.command import (
    CommandTerms,
    RunOutcome,
    command_environment,
    outcome_report,
    run_command,
)

TRAIN = Path(__file__).parents[2] / "examples" / "commands" / "train_regression.py"


class Shipped:
    """What a run shipped, and a stop order that comes once its text shows ``when``."""

    def __init__(self, when: str | None = None, reason: StopReason = StopReason.RECLAIMED,
                 lease_lost: bool = False) -> None:
        self.text = ""
        self._when, self._reason, self._lease_lost = when, reason, lease_lost
        self.stopped_at: float | None = None

    def ship(self, piece: str) -> bool:
        self.text += piece
        return not (self._lease_lost and self._when is not None and self._when in self.text)

    def should_stop(self) -> StopReason | None:
        if self._when is None or self._when not in self.text:
            return None
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()
        return self._reason


def terms(tmp_path: Path, **kw: float) -> CommandTerms:
    return CommandTerms(tmp_path / "checkpoints", log_interval_s=kw.pop("log_interval_s", 0.05),
                        max_log_bytes_per_run=int(kw.pop("max_log_bytes", 1 << 20)),
                        max_grace_s=kw.pop("max_grace_s", 60.0))


def run(spec: CommandSpec, tmp_path: Path, shipped: Shipped, *, job_id: str = "job_1",
        **kw: float) -> RunOutcome:
    return run_command(spec, job_id=job_id, attempt=1, terms=terms(tmp_path, **kw),
                       should_stop=shipped.should_stop, ship=shipped.ship)


def python(code: str, **kw: object) -> CommandSpec:
    return CommandSpec((sys.executable, "-c", code), **kw)  # type: ignore[arg-type]


def test_a_command_that_exits_0_succeeds_with_its_output(tmp_path: Path) -> None:
    shipped = Shipped()
    outcome = run(python("print('hello from the job')"), tmp_path, shipped)
    assert (outcome.exit_code, outcome.stop) == (0, None)
    assert "hello from the job" in shipped.text
    assert "hello from the job" in outcome.tail
    end, results, returned = outcome_report("r1", outcome)
    assert end is RunEnd.SUCCEEDED
    assert returned == []
    assert results[0]["finish_reason"] == "exited"


def test_the_command_sees_the_contract_and_its_own_variables_but_no_runner_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOKER_RUNNER_TOKEN", "runner-secret-123")
    monkeypatch.setenv("STOKER_PROVIDER_API_KEY", "sk-provider-456")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-789")
    shipped = Shipped()
    code = "import os, json; print(json.dumps(dict(os.environ)))"
    outcome = run(python(code, env={"EPOCHS": "3"}, grace_s=7.0), tmp_path, shipped,
                  job_id="job_env")
    assert outcome.exit_code == 0
    for secret in ("runner-secret-123", "sk-provider-456", "aws-789"):
        assert secret not in shipped.text
    assert f'"STOKER_CHECKPOINT_DIR": "{tmp_path / "checkpoints" / "job_env"}"' in shipped.text
    assert '"STOKER_JOB_ID": "job_env"' in shipped.text
    assert '"STOKER_GRACE_S": "7"' in shipped.text
    assert '"EPOCHS": "3"' in shipped.text
    assert (tmp_path / "checkpoints" / "job_env").is_dir()


def test_the_job_cannot_widen_the_devices_it_sees() -> None:
    spec = CommandSpec(("true",), {"EPOCHS": "1"})
    env = command_environment(spec, job_id="j", attempt=2, checkpoint_dir=Path("/c"),
                              grace_s=5, parent={"CUDA_VISIBLE_DEVICES": "3", "PATH": "/bin",
                                                 "STOKER_RUNNER_TOKEN": "t"})
    assert env["CUDA_VISIBLE_DEVICES"] == "3"
    assert "STOKER_RUNNER_TOKEN" not in env
    assert env["STOKER_ATTEMPT"] == "2"


def test_a_reclaimed_training_job_checkpoints_on_sigterm_and_the_next_run_resumes(
        tmp_path: Path) -> None:
    spec = CommandSpec((sys.executable, str(TRAIN), "--steps", "400", "--save-every", "20",
                        "--pace-s", "0.01"), grace_s=30.0)
    first = Shipped(when="step 40 ")
    outcome = run(spec, tmp_path, first)
    assert outcome.stop is StopReason.RECLAIMED
    assert outcome.exit_code == 0
    assert "checkpointed at step" in first.text
    end, results, returned = outcome_report("r1", outcome)
    assert (end, results, returned) == (RunEnd.RETURNED, [], ["r1"])
    saved = int(first.text.split("checkpointed at step ")[1].split()[0])
    assert 40 <= saved < 400
    second = Shipped()
    outcome = run(spec, tmp_path, second)
    assert (outcome.exit_code, outcome.stop) == (0, None)
    assert f"resumed from step {saved}" in second.text
    assert "done at step 400" in second.text


def test_a_command_that_ignores_sigterm_is_killed_after_its_grace(tmp_path: Path) -> None:
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('working', flush=True); time.sleep(120)")
    shipped = Shipped(when="working", reason=StopReason.DRAINING)
    outcome = run(python(code, grace_s=60.0), tmp_path, shipped, max_grace_s=0.5)
    assert outcome.stop is StopReason.DRAINING
    assert outcome.exit_code == -9
    assert shipped.stopped_at is not None
    assert time.monotonic() - shipped.stopped_at < 30


def test_what_the_command_started_in_its_session_goes_with_it(tmp_path: Path) -> None:
    code = ("import subprocess, sys; p = subprocess.Popen(['sleep', '120']); "
            "print('child', p.pid, flush=True)")
    shipped = Shipped()
    outcome = run(python(code), tmp_path, shipped)
    assert outcome.exit_code == 0
    child = int(shipped.text.split("child ")[1].split()[0])
    deadline = time.monotonic() + 10
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the command's child outlived it"
        time.sleep(0.05)


@pytest.mark.parametrize(("code", "stop", "end", "retryable"), [
    ("import sys; sys.exit(3)", None, RunEnd.RETRY, True),
    ("import time; print('x', flush=True); time.sleep(60)", StopReason.TIMED_OUT,
     RunEnd.FAILED, False),
])
def test_a_failed_run_is_retried_or_failed_for_good(tmp_path: Path, code: str,
                                                    stop: StopReason | None, end: RunEnd,
                                                    retryable: bool) -> None:
    outcome = run(python(code, grace_s=0.0, max_run_s=1.0), tmp_path, Shipped())
    assert outcome.stop is stop
    got, results, _ = outcome_report("r1", outcome)
    assert got is end
    assert results[0]["retryable"] is retryable
    assert results[0]["error"]


def test_a_program_that_does_not_exist_fails_at_once_without_retrying(tmp_path: Path) -> None:
    outcome = run(CommandSpec(("no-such-program-here",)), tmp_path, Shipped())
    end, results, _ = outcome_report("r1", outcome)
    assert end is RunEnd.FAILED
    assert results[0]["retryable"] is False
    assert "no-such-program-here" in results[0]["error"]


def test_a_lost_lease_stops_the_command_and_reports_nothing(tmp_path: Path) -> None:
    code = "import time; print('tick', flush=True); time.sleep(120)"
    shipped = Shipped(when="tick", lease_lost=True, reason=StopReason.LEASE_LOST)
    shipped.should_stop = lambda: None  # type: ignore[method-assign]  # only the ship says
    outcome = run(python(code, grace_s=1.0), tmp_path, shipped)
    assert outcome.stop is StopReason.LEASE_LOST
    assert outcome_report("r1", outcome)[0] is RunEnd.UNREPORTED


def test_a_log_past_its_limit_is_cut_with_a_note(tmp_path: Path) -> None:
    shipped = Shipped()
    outcome = run(python("print('y' * 5000)"), tmp_path, shipped, max_log_bytes=1024)
    assert outcome.exit_code == 0
    assert "passed its limit" in shipped.text
    assert "y" * 5000 not in shipped.text

