"""The SQLite store's write lock goes to whoever asked first: a big job written a page per
transaction cannot keep an online submission waiting page after page."""

from __future__ import annotations

import threading

from stoker.store.sqlite_base import ArrivalOrderLock


def test_a_waiting_thread_goes_before_the_holder_takes_the_lock_again() -> None:
    lock = ArrivalOrderLock()
    order: list[str] = []
    waiting = threading.Event()

    def online() -> None:
        waiting.set()
        with lock:
            order.append("online")

    with lock:
        other = threading.Thread(target=online)
        other.start()
        waiting.wait(5)
        # Wait until the other thread is queued behind us (it holds no lock yet).
        for _ in range(500):
            if lock.waiting:
                break
            threading.Event().wait(0.01)
        assert lock.waiting == 1
        order.append("page 1")
    with lock:  # the next page asks after the online call did: it goes second
        order.append("page 2")
    other.join(5)
    assert order == ["page 1", "online", "page 2"]


def test_the_lock_is_reentrant() -> None:
    lock = ArrivalOrderLock()
    with lock, lock:
        taken = threading.Thread(target=lambda: lock.__enter__())
        taken.daemon = True
        taken.start()
        taken.join(0.2)
        assert taken.is_alive()  # held twice by this thread, not free to another
    taken.join(5)
    assert not taken.is_alive()
