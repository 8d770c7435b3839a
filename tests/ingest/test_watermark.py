"""``IngestWatermark``: the oldest receive time of a request still being decoded, else now."""

from __future__ import annotations

import random
import threading
import time

import pytest

from logpond.ingest import watermark as watermark_module
from logpond.ingest.watermark import IngestWatermark


class StepClock:
    """Stands in for ``time`` in the watermark module: returns ``now_ns`` until told otherwise."""

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def time_ns(self) -> int:
        return self.now_ns


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> StepClock:
    step = StepClock(1_800_000_000_000_000_000)
    monkeypatch.setattr(watermark_module, "time", step)
    return step


def test_with_nothing_pending_the_snapshot_is_now() -> None:
    """No request in progress: the snapshot is the current time."""
    watermark = IngestWatermark()
    before = time.time_ns()
    snapshot = watermark.snapshot()
    assert before <= snapshot <= time.time_ns()


def test_the_snapshot_is_the_oldest_pending_receipt_whatever_order_requests_end(clock: StepClock) -> None:
    """Requests ending out of order leave the snapshot at the oldest one still in progress."""
    watermark = IngestWatermark()
    receipts = []
    for _ in range(4):
        clock.now_ns += 1_000
        receipts.append(watermark.begin())
    assert receipts == sorted(receipts) and len(set(receipts)) == 4
    clock.now_ns += 1_000_000
    assert watermark.snapshot() == receipts[0]
    watermark.end(receipts[2])
    assert watermark.snapshot() == receipts[0]
    watermark.end(receipts[0])
    assert watermark.snapshot() == receipts[1]
    watermark.end(receipts[3])
    assert watermark.snapshot() == receipts[1]
    watermark.end(receipts[1])
    assert watermark.snapshot() == clock.now_ns


def test_requests_received_in_the_same_nanosecond_are_counted_apart(clock: StepClock) -> None:
    """Two requests with one receive time: the first to end does not release the other."""
    watermark = IngestWatermark()
    first, second = watermark.begin(), watermark.begin()
    assert first == second
    clock.now_ns += 5_000
    watermark.end(first)
    assert watermark.snapshot() == second
    watermark.end(second)
    assert watermark.snapshot() == clock.now_ns


def test_times_never_go_back_when_the_clock_steps_back(clock: StepClock) -> None:
    """After the wall clock steps back, snapshots and receive times stay at the latest time handed out, so a
    request received later is never before a checkpoint already given to a client."""
    watermark = IngestWatermark()
    first = watermark.snapshot()
    clock.now_ns -= 10_000
    assert watermark.snapshot() == first
    received = watermark.begin()
    assert received >= first
    watermark.end(received)
    clock.now_ns += 20_000
    assert watermark.snapshot() == clock.now_ns


def test_a_request_registered_after_a_snapshot_is_not_before_it() -> None:
    """Whatever begins after a snapshot has a receive time at or after it, so a checkpoint never skips it."""
    watermark = IngestWatermark()
    for _ in range(1_000):
        snapshot = watermark.snapshot()
        received = watermark.begin()
        assert received >= snapshot
        watermark.end(received)


def test_snapshots_never_go_backwards_while_requests_come_and_go() -> None:
    """Under concurrent begin/end from many threads, successive snapshots are non-decreasing."""
    watermark = IngestWatermark()
    stop = threading.Event()
    errors: list[BaseException] = []

    def requests(seed: int) -> None:
        rng = random.Random(seed)
        pending: list[int] = []
        try:
            while not stop.is_set():
                if pending and rng.random() < 0.5:
                    watermark.end(pending.pop(rng.randrange(len(pending))))
                else:
                    pending.append(watermark.begin())
            for received in pending:
                watermark.end(received)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=requests, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    try:
        snapshots = [watermark.snapshot() for _ in range(20_000)]
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert not errors
    assert all(a <= b for a, b in zip(snapshots, snapshots[1:], strict=False))
    before = time.time_ns()
    assert watermark.snapshot() >= before  # every request ended: back to now
