"""Which observed times are safely queryable: the live-tail checkpoint.

A record's ``observed_timestamp`` is its request's receive time (plus its index in microseconds). It
becomes queryable only after decoding, the write-ahead log and the writer's insert, so a live tail that
asked "everything observed since C" could miss a record received before the query but inserted after
it. ``IngestWatermark`` tracks requests from receipt until the writer holds their rows; together with the
writer's queue it gives the instant before which every acknowledged record is in the store.
"""

from __future__ import annotations

import threading
import time
from collections import Counter


class IngestWatermark:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: Counter[int] = Counter()
        self._last_ns = 0

    def _now_ns(self) -> int:
        # never earlier than a time already handed out, even if the wall clock steps back: a checkpoint
        # given to a client must stay before every request received afterwards
        self._last_ns = max(time.time_ns(), self._last_ns)
        return self._last_ns

    def begin(self) -> int:
        """Register a request being received now; returns its receive time (ns), to pass to ``end``."""
        with self._lock:
            received_ns = self._now_ns()
            self._pending[received_ns] += 1
            return received_ns

    def end(self, received_ns: int) -> None:
        """The request's rows are with the writer (or the request failed)."""
        with self._lock:
            self._pending[received_ns] -= 1
            if self._pending[received_ns] <= 0:
                del self._pending[received_ns]

    def snapshot(self) -> int:
        """The oldest receive time of a request still being decoded, else now (ns).

        Read under the same lock ``begin`` takes, so any request registered afterwards has a later time.
        """
        with self._lock:
            now_ns = self._now_ns()
            return min(min(self._pending, default=now_ns), now_ns)
