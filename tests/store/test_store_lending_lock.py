"""A grant that lends a runner asks its check inside the grant's transaction, under the
model's lending lock: two API replicas lending at the same instant see each other's grant, so
the online reserve holds across replicas (on PostgreSQL an advisory lock; on SQLite one write
transaction at a time)."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from stoker.core.batching import Pick
from stoker.core.lending import OnlineReserve, may_lend_runner
from stoker.store import Store
from stoker.store.protocol import LendCheck
from tests.store.test_store_contract import MODEL, new_job, runner

RESERVE = OnlineReserve(runners=1)
#: How long the first grant holds its check open for the second to read past it: a read that
#: must not come while the lock is held.
HOLD_S = 1.0


def reserve_check(runner_id: str, seen: list[tuple[str, int, dict[str, frozenset[str]]]]
                  ) -> LendCheck:
    def check(warm: int, held: Mapping[str, frozenset[str]]) -> bool:
        seen.append((runner_id, warm, dict(held)))
        lent = {r for r, tiers in held.items() if "batch" in tiers}
        return may_lend_runner(warm, len(lent - {runner_id}), already_lent=runner_id in lent,
                               reserve=RESERVE)
    return check


def test_two_replicas_lending_at_once_keep_the_reserve(store: Store) -> None:
    store.submit_job(new_job(2), now=1.0)
    a, b = runner(store), runner(store)
    seen: list[tuple[str, int, dict[str, frozenset[str]]]] = []
    a_checking, b_read = threading.Event(), threading.Event()
    check_a, check_b = reserve_check(a, seen), reserve_check(b, seen)

    def slow_check_a(warm: int, held: Mapping[str, frozenset[str]]) -> bool:
        a_checking.set()
        b_read.wait(HOLD_S)  # without the lock, b reads meanwhile and both lend
        return check_a(warm, held)

    def fast_check_b(warm: int, held: Mapping[str, frozenset[str]]) -> bool:
        b_read.set()
        return check_b(warm, held)

    grants: dict[str, object] = {}

    def lend(runner_id: str, check: LendCheck) -> None:
        grants[runner_id] = store.lease_batch(runner_id, MODEL, [Pick("batch", "default", 1)],
                                              ttl_s=30.0, now=2.0, lend_check=check)

    first = threading.Thread(target=lend, args=(a, slow_check_a))
    first.start()
    assert a_checking.wait(30)
    second = threading.Thread(target=lend, args=(b, fast_check_b))
    second.start()
    first.join(60)
    second.join(60)
    assert grants[a] is not None
    assert grants[b] is None
    # b read after a's grant was committed: a held batch work, so b was the reserve.
    assert seen[-1] == (b, 2, {a: frozenset({"batch"})})


def test_a_refused_check_leases_nothing(store: Store) -> None:
    store.submit_job(new_job(1), now=1.0)
    a = runner(store)
    assert store.lease_batch(a, MODEL, [Pick("batch", "default", 1)], ttl_s=30.0, now=2.0,
                             lend_check=lambda warm, held: False) is None
    assert [g.queued for g in store.queue_groups(MODEL)] == [1]
    assert store.leased_tiers_by_runner(MODEL) == {}
