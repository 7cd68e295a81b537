"""Waste findings over recorded intervals and batches."""

from __future__ import annotations

from stoker.accounting.prices import DEFAULT_RUNNER_CLASSES
from stoker.core.accounting import (
    BatchUse,
    CostConfig,
    JobFacts,
    RequestUse,
    RunnerClass,
    RunnerFacts,
    StateSpan,
    UsageRecords,
    attribute_costs,
)
from stoker.core.model import RunnerState
from stoker.core.waste import (
    Finding,
    ModelFootprint,
    PoolFacts,
    find_waste,
    peak_busy_runners,
)

A100 = next(c for c in DEFAULT_RUNNER_CLASSES if c.name == "a100-80gb")
IDLE, BUSY, STARTING = RunnerState.IDLE, RunnerState.BUSY, RunnerState.STARTING


def batch(k: int, runner: str, start: float, seconds: float, size: int,
          tokens: int = 20) -> BatchUse:
    return BatchUse(f"b{k}", runner, "m", start, start + seconds, size,
                    tuple(RequestUse(f"b{k}q{i}", "j", 10, tokens) for i in range(size)))


def findings(records: UsageRecords, until: float, *, cls: RunnerClass = A100, runners: int = 1,
             footprint: ModelFootprint | None = None, max_batch: int = 16) -> dict[str, Finding]:
    report = attribute_costs(records, CostConfig(), since=0, until=until)
    found = find_waste(records, report, [PoolFacts("m", cls, max_batch, runners)],
                       {"m": footprint} if footprint else {}, DEFAULT_RUNNER_CLASSES)
    assert [f.waste_usd for f in found] == sorted((f.waste_usd for f in found), reverse=True)
    return {f.kind: f for f in found}


def test_idle_pool_cold_starts_and_gaps() -> None:
    records = UsageRecords(
        (RunnerFacts("r", "m", A100),),
        (StateSpan("r", STARTING, 0, 90), StateSpan("r", IDLE, 90, 300),
         StateSpan("r", BUSY, 300, 310), StateSpan("r", IDLE, 310, 320)),
        (batch(0, "r", 300, 10, 16),), (JobFacts("j", "t", "batch", "m", 290, 310, 16),))
    found = findings(records, 320)
    assert found["idle_pool"].figure["idle_s"] == 220
    assert found["idle_pool"].waste_usd == 220 * A100.price_per_s_usd
    assert found["cold_starts"].figure["starting_s"] == 90
    assert found["gaps_between_jobs"].figure["gaps"] == 1
    assert found["gaps_between_jobs"].figure["longest_gap_s"] == 210
    assert "batch_fill" not in found


def test_small_batches_below_the_knee() -> None:
    # Throughput grows with batch size up to 8, but batches average 1.5.
    batches = [batch(0, "r", 0, 1, 1), batch(1, "r", 1, 1, 2), batch(2, "r", 2, 1, 1),
               batch(3, "r", 3, 1, 2), batch(4, "r", 4, 1.25, 8)]
    records = UsageRecords((RunnerFacts("r", "m", A100),), (StateSpan("r", BUSY, 0, 5.25),),
                           tuple(batches), (JobFacts("j", "t", "batch", "m", 0, 5, 14),))
    fill = findings(records, 5.25)["batch_fill"]
    assert fill.figure["knee_batch_size"] == 8
    assert fill.figure["average_batch_size"] == 2.8
    assert fill.waste_usd > 0


def test_a_small_model_on_a_big_gpu_gets_a_cheaper_class() -> None:
    records = UsageRecords((RunnerFacts("r", "m", A100),), (StateSpan("r", BUSY, 0, 100),),
                           (batch(0, "r", 0, 100, 16),), (JobFacts("j", "t", "b", "m", 0, 1, 16),))
    small = ModelFootprint("m", weights_gb=2.0, kv_gb_per_token=1e-4)
    found = findings(records, 100, footprint=small)["accelerator_class"]
    assert found.figure["suggested_class"] == "l4"
    assert found.waste_usd > 0
    # A model that needs 60 GB stays where it is.
    big = ModelFootprint("m", weights_gb=60.0, kv_gb_per_token=0.0)
    assert "accelerator_class" not in findings(records, 100, footprint=big)


def test_a_pool_never_fully_busy_is_too_big() -> None:
    spans = (StateSpan("a", BUSY, 0, 10), StateSpan("a", IDLE, 10, 20),
             StateSpan("b", IDLE, 0, 10), StateSpan("b", BUSY, 10, 20),
             StateSpan("c", IDLE, 0, 20))
    records = UsageRecords(tuple(RunnerFacts(r, "m", A100) for r in "abc"), spans, (), ())
    assert peak_busy_runners(records, "m") == 1
    found = findings(records, 20, runners=3)["pool_never_full"]
    assert found.figure == {"peak_busy_runners": 1, "pool_size": 3}


def test_a_busy_full_pool_has_no_findings() -> None:
    spans = tuple(StateSpan(r, BUSY, 0, 100) for r in "ab")
    batches = (batch(0, "a", 0, 100, 16), batch(1, "b", 0, 100, 16))
    records = UsageRecords(tuple(RunnerFacts(r, "m", A100) for r in "ab"), spans, batches,
                           (JobFacts("j", "t", "b", "m", 0, 100, 32),))
    assert findings(records, 100, runners=2) == {}
