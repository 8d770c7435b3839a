"""The durable batching writer: WAL first, acknowledge, then coalesced inserts into the store.

``submit`` is called once per accepted request with the decoded rows. Under one lock it checks the
bounded queue (``Backpressure`` when full — the API answers 503 with Retry-After), appends the raw request
to the write-ahead log and queues the rows; it then waits for the WAL fsync and returns, and only then does
the API answer 200. A background thread takes queued rows in WAL order, inserts them in large batches and
advances a checkpoint.

Exactly-once into the store across crashes: before each insert the writer records the WAL range and a
deduplication token derived from it (``inflight.json``); the store ignores an insert whose token it has
seen. At start, the in-flight range is re-inserted with its token, then everything after the checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from logpond.ingest.wal import Position, Record, WriteAheadLog
from logpond.store.base import Store

log = logging.getLogger(__name__)

# rebuilds the rows of a WAL record at replay: (kind, team_id, received_ns, payload) -> rows
Decoder = Callable[[Record], Any]
# writes the rows of consecutive WAL records to the store, at most once per dedup token
Inserter = Callable[[list[Any], str], None]


class Rows(Protocol):
    """What the writer queues: anything that knows its row count (an Arrow table, a batch of events)."""

    @property
    def num_rows(self) -> int: ...


class Backpressure(Exception):
    """The writer's queue is full; the client should retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"ingestion queue is full, retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class _Item:
    table: Rows
    start: Position
    end: Position
    received_ns: int


@dataclass
class WriterStats:
    accepted_rows: int = 0
    inserted_rows: int = 0
    inserted_batches: int = 0
    rejected_requests: int = 0
    replayed_rows: int = 0
    insert_failures: int = 0


def _one_chunk(tables: list[pa.Table]) -> pa.Table:
    """One table in one chunk: the store's deduplication token only matches an identically split insert."""
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    return table.combine_chunks()


class DurableWriter:
    last_error: str | None = None

    def __init__(
        self,
        store: Store,
        wal_dir: Path,
        decoder: Decoder,
        *,
        queue_max_rows: int = 2_000_000,
        batch_max_rows: int = 200_000,
        flush_interval: float = 0.2,
        fsync: bool = True,
        segment_max_bytes: int = 64 * 1024 * 1024,
        inserter: Inserter | None = None,
        name: str = "logpond-writer",
    ) -> None:
        self.store = store
        self.decoder = decoder
        self.insert: Inserter = inserter or self._insert_logs
        self.name = name
        self.queue_max_rows = queue_max_rows
        self.batch_max_rows = batch_max_rows
        self.flush_interval = flush_interval
        self.wal = WriteAheadLog(wal_dir, segment_max_bytes=segment_max_bytes, fsync=fsync)
        self.stats = WriterStats()
        self._state_dir = wal_dir
        self._queue: deque[_Item] = deque()
        self._queued_rows = 0
        self._oldest_at: float | None = None
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._drained = threading.Condition(self._lock)
        self._stopping = False
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Replay what the last run acknowledged but did not insert, then start the insert thread."""
        self._replay()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._wakeup.notify_all()
        if self._thread is not None:
            self._thread.join()
        self.wal.close()

    # --- the request path ------------------------------------------------------------------------
    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    def submit(self, kind: int, team_id: int, received_ns: int, payload: bytes, table: Rows) -> None:
        """Make ``table`` durable (WAL + fsync) and queue it for insertion; raise ``Backpressure`` if full."""
        rows = table.num_rows
        with self._lock:
            if self._stopping:
                raise Backpressure(retry_after=5)
            if self._queued_rows and self._queued_rows + rows > self.queue_max_rows:
                self.stats.rejected_requests += 1
                raise Backpressure(retry_after=self._retry_after())
            start, end = self.wal.append(kind, team_id, received_ns, payload)
            self._enqueue(_Item(table, start, end, received_ns))
            self.stats.accepted_rows += rows
        self.wal.sync(end)

    def _enqueue(self, item: _Item) -> None:
        self._queue.append(item)
        self._queued_rows += item.table.num_rows
        if self._oldest_at is None:
            self._oldest_at = time.monotonic()
            # the insert thread may be idling on an empty queue (it checks twice a second): start the
            # flush interval now, or the first rows after a pause would wait up to half a second more
            self._wakeup.notify()
        elif self._queued_rows >= self.batch_max_rows:
            self._wakeup.notify()

    def oldest_queued_received_ns(self) -> int | None:
        """Receive time of the oldest acknowledged row not yet in the store (or being inserted)."""
        with self._lock:
            candidates = [item.received_ns for item in self._queue]
            if self._inflight_received_ns is not None:
                candidates.append(self._inflight_received_ns)
        return min(candidates) if candidates else None

    def _retry_after(self) -> int:
        # rough time to drain the queue at the last observed insert rate, at least one second
        return max(1, min(30, int(self._queued_rows / 200_000) + 1))

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued row is in the store (tests and shutdown use this)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._wakeup.notify()
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._drained.wait(remaining)
        return True

    # --- the insert thread -----------------------------------------------------------------------
    _busy = False
    _inflight_received_ns: int | None = None

    def _take_batch(self) -> list[_Item] | None:
        with self._lock:
            while True:
                if self._queue:
                    due = self._oldest_at is not None and time.monotonic() - self._oldest_at >= self.flush_interval
                    if due or self._queued_rows >= self.batch_max_rows or self._stopping:
                        break
                    wait = self.flush_interval - (time.monotonic() - (self._oldest_at or time.monotonic()))
                    self._wakeup.wait(max(0.001, wait))
                elif self._stopping:
                    return None
                else:
                    self._wakeup.wait(0.5)
            batch: list[_Item] = []
            rows = 0
            while self._queue and (not batch or rows + self._queue[0].table.num_rows <= self.batch_max_rows):
                item = self._queue.popleft()
                batch.append(item)
                rows += item.table.num_rows
            self._busy = True
            self._inflight_received_ns = min(item.received_ns for item in batch)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            rows = sum(item.table.num_rows for item in batch)
            delay = 0.1
            while not self._insert_batch(batch):
                # the store or the disk failed: the rows stay in the WAL; retry unless we are stopping,
                # in which case the next start replays them
                with self._lock:
                    if self._stopping:
                        self._busy = False
                        self._drained.notify_all()
                        return
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            with self._lock:
                self._queued_rows -= rows
                self._busy = False
                self._inflight_received_ns = None
                self._oldest_at = time.monotonic() if self._queue else None
                self._drained.notify_all()

    def _insert_batch(self, batch: list[_Item]) -> bool:
        """Insert one batch exactly once across crashes; False (after logging) if anything failed."""
        start, end = batch[0].start, batch[-1].end
        token = f"wal-{start.segment}.{start.offset}-{end.segment}.{end.offset}"
        try:
            self._write_state(
                "inflight.json",
                {"start": [start.segment, start.offset], "end": [end.segment, end.offset], "token": token},
            )
            self.insert([item.table for item in batch], token)
            self.stats.inserted_rows += sum(item.table.num_rows for item in batch)
            self.stats.inserted_batches += 1
            self._write_state("checkpoint.json", {"position": [end.segment, end.offset]})
            self._remove_state("inflight.json")
            self.wal.delete_segments_before(end.segment)
        except Exception as exc:  # keep the thread alive whatever failed; the batch is retried
            self.stats.insert_failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("writing a batch of %d rows failed; will retry", sum(i.table.num_rows for i in batch))
            return False
        self.last_error = None
        return True

    def _insert_logs(self, tables: list[Any], token: str) -> None:
        self.store.insert_logs(_one_chunk(tables), dedup_token=token)

    # --- state files -----------------------------------------------------------------------------
    def _write_state(self, name: str, doc: dict[str, object]) -> None:
        path = self._state_dir / name
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(doc, f)
            f.flush()
            if self.wal.fsync_enabled:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        self._sync_dir()

    def _remove_state(self, name: str) -> None:
        (self._state_dir / name).unlink(missing_ok=True)
        self._sync_dir()

    def _sync_dir(self) -> None:
        if self.wal.fsync_enabled:
            fd = os.open(self._state_dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _read_state(self, name: str) -> dict[str, object] | None:
        path = self._state_dir / name
        if not path.exists():
            return None
        with open(path) as f:
            doc: dict[str, object] = json.load(f)
            return doc

    def _replay(self) -> None:
        checkpoint = self._read_state("checkpoint.json")
        position = Position(*checkpoint["position"]) if checkpoint else Position(0, 0)  # type: ignore[misc]
        inflight = self._read_state("inflight.json")
        if inflight is not None:
            start, end = Position(*inflight["start"]), Position(*inflight["end"])  # type: ignore[misc]
            if end > position:
                records = [r for r in self.wal.read_from(start) if r.end <= end]
                tables = [self.decoder(r) for r in records]
                if tables:
                    self.insert(tables, str(inflight["token"]))
                    self.stats.replayed_rows += sum(t.num_rows for t in tables)
                position = end
                self._write_state("checkpoint.json", {"position": [end.segment, end.offset]})
            self._remove_state("inflight.json")
        replayed = 0
        for record in self.wal.read_from(position):
            if record.start < position:
                continue
            table = self.decoder(record)
            with self._lock:
                self._enqueue(_Item(table, record.start, record.end, record.received_ns))
            replayed += table.num_rows
        self.stats.replayed_rows += replayed
        if replayed:
            log.info("replaying %d acknowledged rows from the write-ahead log", replayed)
