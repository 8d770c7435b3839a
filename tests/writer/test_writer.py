"""The write-ahead log and the durable writer: acknowledged rows reach the store exactly once."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from logpond.ingest.pipeline import arrow_to_bytes, decode_wal_record
from logpond.ingest.wal import KIND_ARROW_LOGS, Position, WriteAheadLog
from logpond.ingest.writer import Backpressure, DurableWriter
from logpond.store.chdb_store import ChDBStore
from logpond.store.schema import LOG_ARROW_SCHEMA


def batch(n: int, team_id: int = 1, tag: str = "x") -> pa.Table:
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "team_id": team_id,
            "uuid": str(uuid.uuid4()),
            "trace_id": b"",
            "span_id": b"",
            "trace_flags": 0,
            "timestamp": now,
            "observed_timestamp": now,
            "body": f"{tag}-{i}",
            "severity_text": "info",
            "severity_number": 9,
            "service_name": "svc",
            "resource_attributes": [("service.name", "svc")],
            "instrumentation_scope": "",
            "event_name": "",
            "attributes": [("tag", tag)],
        }
        for i in range(n)
    ]
    return pa.Table.from_pylist(rows, schema=LOG_ARROW_SCHEMA)


def make_writer(store: ChDBStore, wal_dir: Path, **kwargs: object) -> DurableWriter:
    return DurableWriter(
        store, wal_dir, lambda r: decode_wal_record(r, max_decompressed_bytes=10**8), flush_interval=0.01, **kwargs
    )  # type: ignore[arg-type]


def submit(writer: DurableWriter, table: pa.Table) -> None:
    writer.submit(KIND_ARROW_LOGS, 1, 0, arrow_to_bytes(table), table)


def count(store: ChDBStore) -> int:
    return int(store.execute(f"SELECT count() FROM {store.database}.logs").rows[0][0])


def bodies(store: ChDBStore) -> list[str]:
    return sorted(r[0] for r in store.execute(f"SELECT body FROM {store.database}.logs").rows)


def test_submitted_rows_are_inserted_and_checkpointed(store: ChDBStore, tmp_path: Path) -> None:
    """Rows submitted to a running writer reach the store and the checkpoint moves past them."""
    writer = make_writer(store, tmp_path / "wal")
    writer.start()
    for i in range(5):
        submit(writer, batch(10, tag=f"b{i}"))
    assert writer.flush(10)
    writer.stop()
    assert count(store) == 50
    assert (tmp_path / "wal" / "checkpoint.json").exists()
    assert not (tmp_path / "wal" / "inflight.json").exists()


def test_rows_after_a_pause_wait_only_the_flush_interval(store: ChDBStore, tmp_path: Path) -> None:
    """Rows submitted to an idle writer are inserted after the flush interval, not at its next idle check."""
    writer = make_writer(store, tmp_path / "wal")  # flush interval 10 ms; idle, it checks every 500 ms
    writer.start()
    try:
        time.sleep(0.05)  # the insert thread is idling on the empty queue
        submit(writer, batch(3, tag="after-pause"))
        deadline = time.monotonic() + 0.3
        while writer.stats.inserted_rows < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert writer.stats.inserted_rows == 3
    finally:
        writer.stop()


def test_acknowledged_rows_survive_a_crash_before_insert(store: ChDBStore, tmp_path: Path) -> None:
    """Rows acknowledged but never inserted (the process died) are inserted by the next start, once."""
    crashed = make_writer(store, tmp_path / "wal")  # never started: nothing gets inserted
    submit(crashed, batch(7, tag="a"))
    submit(crashed, batch(3, tag="b"))
    os.close(crashed.wal._fd)
    assert count(store) == 0
    writer = make_writer(store, tmp_path / "wal")
    writer.start()
    assert writer.flush(10)
    writer.stop()
    assert count(store) == 10
    assert writer.stats.replayed_rows == 10


def test_insert_interrupted_before_checkpoint_is_not_duplicated(
    store: ChDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch inserted just before a crash (checkpoint not yet written) is not inserted twice at restart."""
    first = make_writer(store, tmp_path / "wal")
    real_write_state = first._write_state

    def lose_checkpoint(name: str, doc: dict[str, object]) -> None:
        if name != "checkpoint.json":
            real_write_state(name, doc)

    monkeypatch.setattr(first, "_write_state", lose_checkpoint)
    monkeypatch.setattr((tmp_path / "wal" / "inflight.json").__class__, "unlink", lambda self, missing_ok=False: None)
    first.start()
    submit(first, batch(20, tag="once"))
    assert first.flush(10)
    first.stop()
    monkeypatch.undo()
    assert count(store) == 20
    assert (tmp_path / "wal" / "inflight.json").exists()
    second = make_writer(store, tmp_path / "wal")
    second.start()
    assert second.flush(10)
    second.stop()
    assert count(store) == 20


def test_torn_tail_is_ignored(tmp_path: Path) -> None:
    """A half-written record at the end of a segment ends replay there; earlier records are intact."""
    wal = WriteAheadLog(tmp_path)
    wal.append(KIND_ARROW_LOGS, 1, 1, b"first")
    _, end = wal.append(KIND_ARROW_LOGS, 1, 2, b"second")
    wal.sync(end)
    wal.close()
    with open(tmp_path / "wal-000000000001.log", "ab") as f:
        f.write(b"LPW1\x02garbage")
    records = list(WriteAheadLog(tmp_path).read_from(Position(0, 0)))
    assert [r.payload for r in records] == [b"first", b"second"]


def test_full_queue_answers_backpressure_and_writes_nothing(store: ChDBStore, tmp_path: Path) -> None:
    """Past queue_max_rows, submit raises Backpressure with a retry delay and the WAL holds only accepted rows."""
    writer = make_writer(store, tmp_path / "wal", queue_max_rows=25)  # not started: the queue only fills
    submit(writer, batch(20))
    with pytest.raises(Backpressure) as raised:
        submit(writer, batch(10))
    assert raised.value.retry_after >= 1
    assert writer.stats.rejected_requests == 1
    os.close(writer.wal._fd)
    assert sum(r.payload != b"" for r in WriteAheadLog(tmp_path / "wal").read_from(Position(0, 0))) == 1


class FlakyStore:
    """The real store, with its first inserts failing as if the disk were full."""

    def __init__(self, store: ChDBStore, failures: int) -> None:
        self.store = store
        self.failures = failures
        self.database = store.database

    def insert_logs(self, table: pa.Table, *, dedup_token: str | None = None) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("No space left on device")
        self.store.insert_logs(table, dedup_token=dedup_token)


def test_failed_inserts_are_retried_not_dropped(store: ChDBStore, tmp_path: Path) -> None:
    """When the store refuses an insert the writer keeps the rows and retries until it succeeds."""
    writer = DurableWriter(
        FlakyStore(store, failures=2),
        tmp_path / "wal",  # type: ignore[arg-type]
        lambda r: decode_wal_record(r, max_decompressed_bytes=10**8),
        flush_interval=0.01,
    )
    writer.start()
    submit(writer, batch(15, tag="retry"))
    assert writer.flush(20)
    writer.stop()
    assert count(store) == 15
    assert writer.stats.insert_failures == 2


def test_segments_rotate_and_consumed_ones_are_deleted(store: ChDBStore, tmp_path: Path) -> None:
    """Small segments rotate; once their rows are in the store, the old segment files are removed."""
    writer = make_writer(store, tmp_path / "wal", segment_max_bytes=4096)
    writer.start()
    for i in range(30):
        submit(writer, batch(5, tag=f"r{i}"))
    assert writer.flush(10)
    submit(writer, batch(1, tag="last"))
    assert writer.flush(10)
    writer.stop()
    assert count(store) == 151
    assert len(writer.wal.segments()) <= 2


class BrokenDiskStore(FlakyStore):
    """The real store behind a disk that refuses every write until ``heal``."""

    def __init__(self, store: ChDBStore) -> None:
        super().__init__(store, failures=10**9)

    def heal(self) -> None:
        self.failures = 0


def test_writer_survives_failures_outside_the_insert(store: ChDBStore, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure writing the writer's own state (disk full) is retried; the thread keeps going."""
    writer = make_writer(store, tmp_path / "wal")
    real = writer._write_state
    calls = {"n": 0}

    def fail_twice(name: str, doc: dict[str, object]) -> None:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise OSError("No space left on device")
        real(name, doc)

    monkeypatch.setattr(writer, "_write_state", fail_twice)
    writer.start()
    submit(writer, batch(12, tag="state"))
    assert writer.flush(20)
    assert writer._thread is not None and writer._thread.is_alive()
    writer.stop()
    assert count(store) == 12
    assert writer.last_error is None


def test_stop_returns_while_the_store_is_down_and_replay_catches_up(store: ChDBStore, tmp_path: Path) -> None:
    """Shutting down with the store unreachable does not hang; the next start inserts the rows once."""
    broken = BrokenDiskStore(store)
    writer = DurableWriter(broken, tmp_path / "wal",  # type: ignore[arg-type]
                           lambda r: decode_wal_record(r, max_decompressed_bytes=10**8), flush_interval=0.01)
    writer.start()
    submit(writer, batch(9, tag="down"))
    assert not writer.flush(0.5)
    assert writer.last_error is not None and "No space left" in writer.last_error
    writer.stop()
    assert count(store) == 0
    again = make_writer(store, tmp_path / "wal")
    again.start()
    assert again.flush(10)
    again.stop()
    assert count(store) == 9


def test_failed_wal_write_leaves_no_partial_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails half-way is cut off, so records appended after it are still readable."""
    wal = WriteAheadLog(tmp_path)
    wal.append(KIND_ARROW_LOGS, 1, 1, b"before")
    real_write = os.write
    state = {"fail": True}

    def half_then_fail(fd: int, data: bytes) -> int:
        if state["fail"] and len(data) > 10:
            state["fail"] = False
            real_write(fd, data[:10])
            raise OSError("No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", half_then_fail)
    with pytest.raises(OSError):
        wal.append(KIND_ARROW_LOGS, 1, 2, b"lost in the middle")
    _, end = wal.append(KIND_ARROW_LOGS, 1, 3, b"after")
    wal.sync(end)
    wal.close()
    assert [r.payload for r in WriteAheadLog(tmp_path).read_from(Position(0, 0))] == [b"before", b"after"]
