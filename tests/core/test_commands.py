"""Command jobs' pure rules: their queue, the variables a job may set, how a run's end maps to
its request, and when a stopped command is killed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stoker.core.commands import (
    CommandSpec,
    RunEnd,
    StopReason,
    command_queue,
    env_problem,
    is_command_queue,
    kill_at,
    queue_model,
    run_end,
)


@given(st.text(min_size=1).filter(lambda m: "#" not in m))
def test_a_command_queue_names_its_model_and_is_told_apart(model: str) -> None:
    queue = command_queue(model)
    assert is_command_queue(queue)
    assert not is_command_queue(model)
    assert queue_model(queue) == model
    assert queue_model(model) == model


@pytest.mark.parametrize("name", ["STOKER_CHECKPOINT_DIR", "STOKER_RUNNER_TOKEN",
                                  "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"])
def test_a_job_may_not_set_the_contract_or_the_devices_it_sees(name: str) -> None:
    problem = env_problem(name)
    assert problem is not None
    assert name in problem


@pytest.mark.parametrize("name", ["1BAD", "A-B", "", "A B"])
def test_a_variable_name_must_be_one(name: str) -> None:
    assert env_problem(name) is not None


def test_ordinary_variables_are_the_jobs_own() -> None:
    assert env_problem("EPOCHS") is None
    assert env_problem("WANDB_MODE") is None


def test_a_spec_survives_being_stored() -> None:
    spec = CommandSpec(("python", "train.py", "--lr", "3e-4"), {"EPOCHS": "3"}, 12.5, 600.0)
    assert CommandSpec.from_body(spec.body()) == spec
    assert CommandSpec.from_body(CommandSpec(("true",)).body()).max_run_s is None


@pytest.mark.parametrize("body", [{}, {"argv": []}, {"argv": "ls"}, {"argv": ["ls"], "env": []}])
def test_a_body_that_is_no_command_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="non-empty 'argv' list"):
        CommandSpec.from_body(body)


@pytest.mark.parametrize(("code", "stop", "end"), [
    (0, None, RunEnd.SUCCEEDED),
    (3, None, RunEnd.RETRY),
    (-9, None, RunEnd.RETRY),
    # Told to stop, a run is judged by why: exiting 0 after a checkpoint is not done.
    (0, StopReason.RECLAIMED, RunEnd.RETURNED),
    (-15, StopReason.RECLAIMED, RunEnd.RETURNED),
    (-9, StopReason.DRAINING, RunEnd.RETURNED),
    (0, StopReason.CANCELLED, RunEnd.STOPPED),
    (0, StopReason.LEASE_LOST, RunEnd.UNREPORTED),
    (-15, StopReason.TIMED_OUT, RunEnd.FAILED),
])
def test_how_a_run_ends_decides_its_request(code: int, stop: StopReason | None,
                                            end: RunEnd) -> None:
    assert run_end(code, stop) is end


@given(st.floats(0, 1e6), st.floats(0, 3600), st.none() | st.floats(0, 3600))
def test_a_stopped_command_is_killed_after_its_grace_and_never_past_the_cap(
        at: float, grace: float, cap: float | None) -> None:
    killed = kill_at(at, grace, cap_s=cap)
    assert at <= killed <= at + grace
    if cap is not None:
        assert killed <= at + cap
