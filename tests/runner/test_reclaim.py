"""A static runner's batch handed back for online work: the reclaimed rows leave after the
grace, the others finish (tiny model, CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stoker.runner.backends.transformers import TransformersBackend
from stoker.runner.reclaim import ReclaimInbox, run_reclaimable


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path) -> TransformersBackend:
    return TransformersBackend(tiny_model_dir)


def requests(*specs: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"id": rid, "endpoint": "/v1/completions",
             "body": {"prompt": f"Tell me about {rid}", "max_tokens": n, "temperature": 0}}
            for rid, n in specs]


def test_without_an_order_every_row_is_answered(backend: TransformersBackend) -> None:
    results, returned = run_reclaimable(backend, requests(("a", 4), ("b", 6)), ReclaimInbox())
    assert [r["request_id"] for r in results] == ["a", "b"]
    assert returned == []


def test_an_order_past_its_grace_hands_back_its_rows_and_keeps_the_others(
        backend: TransformersBackend) -> None:
    inbox = ReclaimInbox()
    inbox.receive({"request_ids": ["b1", "b2"], "grace_s": 0})
    results, returned = run_reclaimable(
        backend, requests(("online", 5), ("b1", 200), ("b2", 200)), inbox)
    assert [r["request_id"] for r in results] == ["online"]
    assert sorted(returned) == ["b1", "b2"]


def test_the_grace_lets_rows_that_finish_in_time_be_answered(
        backend: TransformersBackend) -> None:
    inbox = ReclaimInbox()
    inbox.receive({"request_ids": ["quick", "long"], "grace_s": 60})
    assert inbox.due() == frozenset()
    results, returned = run_reclaimable(backend, requests(("quick", 3)), inbox)
    assert [r["request_id"] for r in results] == ["quick"]
    assert returned == []


def test_a_repeated_order_keeps_its_first_deadline_and_a_wider_one_replaces_it() -> None:
    inbox = ReclaimInbox()
    inbox.receive({"request_ids": ["x"], "grace_s": 100})
    inbox.receive({"request_ids": ["x"], "grace_s": 0})
    assert inbox.due() == frozenset()  # the heartbeat repeating it does not shorten the grace
    inbox.receive({"request_ids": ["x", "y"], "grace_s": 0})
    assert inbox.due() == frozenset({"x", "y"})
    inbox.clear()
    assert inbox.due() == frozenset()


def test_online_rows_are_sent_as_they_finish_with_their_share_of_the_time(
        backend: TransformersBackend) -> None:
    batch = requests(("online", 3), ("b1", 40), ("b2", 40))
    batch[0]["online"] = True
    sent: list[tuple[list[str], float]] = []

    def report_early(results: list[dict[str, Any]], share: float) -> bool:
        sent.append(([r["request_id"] for r in results], share))
        return True

    results, returned = run_reclaimable(backend, batch, ReclaimInbox(), report_early)
    assert sent == [(["online"], pytest.approx(1 / 3))]  # one of the three rows decoding
    assert [r["request_id"] for r in results] == ["b1", "b2"]
    assert returned == []


def test_online_rows_not_sent_early_go_with_the_batch(backend: TransformersBackend) -> None:
    batch = requests(("online", 3), ("b1", 20))
    batch[0]["online"] = True
    results, _ = run_reclaimable(backend, batch, ReclaimInbox(), lambda results, share: False)
    assert [r["request_id"] for r in results] == ["online", "b1"]
