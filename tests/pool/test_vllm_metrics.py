"""Reading a vLLM replica's load from its /metrics, and the lending policy run against
recorded metric sequences served over HTTP (vLLM cannot run here; its metrics are replayed)."""

from __future__ import annotations

import httpx
import pytest

from stoker.core.lending import LendingConfig, LendingState, ReplicaLoad, plan_lending
from stoker.pool.vllm_metrics import NotVllmMetrics, replica_load, scrape_replica
from tests.pool.vllm_replay import Frame, load_recording, replayed_fleet, vllm_metrics_text


def test_running_and_waiting_are_summed_over_engines_and_kv_is_the_fullest() -> None:
    text = vllm_metrics_text(Frame(running=(3, 4), waiting=(1, 0), kv_cache_usage=(0.2, 0.6)))
    assert replica_load("r0", text) == ReplicaLoad("r0", running=7, waiting=1,
                                                   kv_cache_usage=0.6)


def test_the_pre_v1_kv_cache_gauge_is_read_too() -> None:
    text = vllm_metrics_text(Frame((1,), (0,), (0.4,))).replace("vllm:kv_cache_usage_perc",
                                                                 "vllm:gpu_cache_usage_perc")
    assert replica_load("r0", text).kv_cache_usage == 0.4


def test_metrics_of_something_else_are_refused() -> None:
    with pytest.raises(NotVllmMetrics, match="vllm:num_requests_running"):
        replica_load("r0", "# TYPE process_cpu_seconds_total counter\n"
                           "process_cpu_seconds_total 12.5\n")
    with pytest.raises(ValueError, match="r0: not Prometheus text"):
        replica_load("r0", "this is { not prometheus\n")


def test_a_replica_that_does_not_answer_is_unreachable() -> None:
    steps = [{"r0": Frame((1,), (0,), (0.1,))}]
    with replayed_fleet(steps) as fleet, httpx.Client(timeout=2) as http:
        load, problem = scrape_replica(http, "r0", fleet.replica_url("r0"))
        assert (load, problem) == (ReplicaLoad("r0", 1, 0, 0.1), None)
        gone, why = scrape_replica(http, "r9", fleet.replica_url("r9"))
        assert gone == ReplicaLoad("r9", reachable=False)
        assert why is not None
        assert "503" in why
    with httpx.Client(timeout=2) as http:
        closed, why = scrape_replica(http, "r0", fleet.replica_url("r0"))
    assert not closed.reachable
    assert why is not None
    assert "ConnectError" in why


def test_the_policy_over_a_recorded_night_and_morning() -> None:
    config = LendingConfig(requests_per_replica=16, headroom=0.25, min_serving_replicas=1,
                           max_waiting=0, kv_cache_high=0.85, lend_delay_s=60, lend_step=1)
    steps = load_recording("night_and_day.yaml")
    names = ["r0", "r1", "r2"]
    state, decisions = LendingState(), []
    with replayed_fleet(steps) as fleet, httpx.Client(timeout=2) as http:
        for step, now in enumerate([0.0, 60.0, 90.0, 150.0, 210.0]):
            fleet.step = step
            loads = [scrape_replica(http, n, fleet.replica_url(n))[0] for n in names]
            decision, state = plan_lending(loads, state, config, now=now)
            decisions.append((decision, state.lent))
    # Night: calm from 0 s; after the delay the quietest replica is lent, one step at a time.
    assert [d.lend for d, _ in decisions[:3]] == [(), ("r2",), ()]
    # r2 stops answering: it stays lent (it is Stoker's now); r1 is not lent within the delay.
    assert decisions[2][1] == ("r2",)
    # The rush: r0 waits and its KV cache is 93% full: r2 comes back at once.
    rush, lent_after = decisions[3]
    assert rush.reclaim == ("r2",)
    assert "r0 has 6 requests waiting" in rush.detail
    assert lent_after == ()
    # Day: all three serve; nothing is lent while the load needs them.
    assert decisions[4][0].lend == ()
    assert decisions[4][0].needed == 5  # 57 x 1.25 / 16, though only 3 exist
