"""A shared budget's slots passed between the threads of one process: no round trip to the state for
either side, the in-flight cap held, and never past a pause."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from invoicesync.http import SharedBudget

KEY = "billit:books"


class CountingLedger:
    """An in-memory ``BudgetLedger`` that counts its calls (each is a round trip to the real state)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: set[int] = set()
        self.acquires = self.releases = 0
        self.paused = 0.0

    def acquire(self, key: str, slots: int) -> tuple[int | None, float]:
        with self.lock:
            self.acquires += 1
            if self.paused:
                return None, self.paused
            free = [slot for slot in range(slots) if slot not in self.held]
            if not free:
                return None, 0.0
            self.held.add(free[0])
            return free[0], 0.0

    def release(self, key: str, slot: int) -> None:
        with self.lock:
            self.releases += 1
            self.held.remove(slot)

    def reserve(self, key: str, requests: int, period: float) -> float:
        return 0.0

    def pause(self, key: str, seconds: float) -> None:
        self.paused = seconds


def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.005)


def _second_request(budget: SharedBudget, during: Callable[[], None] = lambda: None) -> list[str]:
    """One thread holds the only slot; a second asks for one meanwhile; the first ends (after ``during``)."""
    order: list[str] = []
    release_first = threading.Event()

    def first() -> None:
        with budget.slot():
            order.append("first")
            release_first.wait(10)
            during()

    def second() -> None:
        with budget.slot():
            order.append("second")

    one = threading.Thread(target=first)
    one.start()
    _until(lambda: order == ["first"])
    two = threading.Thread(target=second)
    two.start()
    _until(lambda: budget._queued == 1)  # the second waits in the process, not polling the state
    release_first.set()
    one.join(10)
    two.join(10)
    return order


def test_a_finished_request_hands_its_slot_to_a_waiting_thread_without_asking_the_state() -> None:
    ledger = CountingLedger()
    budget = SharedBudget(ledger, KEY, concurrency=1)
    assert _second_request(budget) == ["first", "second"]
    assert (ledger.acquires, ledger.releases) == (1, 1)  # was 2 and 2 (and polls) before
    assert ledger.held == set() and budget.used == 2


def test_no_slot_is_handed_on_past_a_pause() -> None:
    """A 429's Retry-After pauses the credential: the waiting thread must read the pause, not slip
    through on the slot of the request that saw the 429."""
    ledger = CountingLedger()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        ledger.paused = 0.0  # the pause is over once slept

    budget = SharedBudget(ledger, KEY, concurrency=1, sleep=sleep)
    assert _second_request(budget, during=lambda: budget.pause(5.0)) == ["first", "second"]
    assert slept == [5.0] and ledger.acquires == 3 and ledger.held == set()


def test_many_threads_share_few_slots_and_leave_none_held() -> None:
    ledger = CountingLedger()
    budget = SharedBudget(ledger, KEY, concurrency=3)
    in_flight, most = 0, 0
    count = threading.Lock()

    def request() -> None:
        nonlocal in_flight, most
        with budget.slot():
            with count:
                in_flight += 1
                most = max(most, in_flight)
            time.sleep(0.002)
            with count:
                in_flight -= 1

    threads = [threading.Thread(target=lambda: [request() for _ in range(20)]) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert budget.used == 200 and most <= 3
    assert ledger.held == set() and ledger.acquires == ledger.releases < 200
