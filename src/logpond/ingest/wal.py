"""An append-only, checksummed, segmented write-ahead log with group commit.

Ingestion appends each accepted request (as received: its bytes, its project and its receive time) and
acknowledges it only after ``sync`` has fsynced the segment up to that record. Concurrent requests share
fsyncs: whoever holds the sync lock flushes everything written so far, so the cost per request falls as
load rises. The writer replays records past its checkpoint at start.

Record layout (little endian): magic ``LPW1`` · kind u8 · team_id i32 · received_ns i64 · length u32 ·
crc32 u32 (of the payload) · payload. A torn or corrupt record ends the segment: everything before it is
intact, nothing after it was acknowledged.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"LPW1"
_HEADER = struct.Struct("<4sBiqII")
_SEGMENT_RE = re.compile(r"^wal-(\d{12})\.log$")

# record kinds
KIND_OTLP_LOGS = 1
KIND_ARROW_LOGS = 2
KIND_CAPTURE = 3  # a PostHog capture request as received (logpond.events.batch.wal_payload)


@dataclass(frozen=True, order=True)
class Position:
    """A point in the log: segment sequence number and byte offset inside it."""

    segment: int
    offset: int


@dataclass(frozen=True)
class Record:
    kind: int
    team_id: int
    received_ns: int
    payload: bytes
    start: Position
    end: Position


def _segment_name(seq: int) -> str:
    return f"wal-{seq:012d}.log"


class WriteAheadLog:
    def __init__(self, directory: Path, *, segment_max_bytes: int = 64 * 1024 * 1024, fsync: bool = True) -> None:
        self.directory = directory
        self.segment_max_bytes = segment_max_bytes
        self.fsync_enabled = fsync
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        existing = self.segments()
        # always start a fresh segment: a torn tail of the previous run stays where it is, unread
        self._seq = (existing[-1] + 1) if existing else 1
        self._fd = self._open(self._seq)
        self._offset = 0
        self._synced = Position(self._seq, 0)
        # descriptors of rotated segments: already fsynced, closed under the sync lock so that a sync that
        # picked up the old descriptor just before a rotation never fsyncs a closed one
        self._retired: list[int] = []

    def _open(self, seq: int) -> int:
        fd = os.open(self.directory / _segment_name(seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if self.fsync_enabled:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # make the new file's directory entry durable too
            finally:
                os.close(dir_fd)
        return fd

    def segments(self) -> list[int]:
        seqs = []
        for name in os.listdir(self.directory):
            match = _SEGMENT_RE.match(name)
            if match:
                seqs.append(int(match.group(1)))
        return sorted(seqs)

    @property
    def current_segment(self) -> int:
        return self._seq

    def append(self, kind: int, team_id: int, received_ns: int, payload: bytes) -> tuple[Position, Position]:
        """Write one record (not yet durable: call ``sync``). Callers serialise appends themselves."""
        header = _HEADER.pack(MAGIC, kind, team_id, received_ns, len(payload), zlib.crc32(payload))
        with self._lock:
            if self._offset and self._offset + len(header) + len(payload) > self.segment_max_bytes:
                self._rotate()
            start = Position(self._seq, self._offset)
            data = header + payload
            try:
                written = 0
                while written < len(data):  # os.write may write less than asked (disk nearly full)
                    written += os.write(self._fd, data[written:])
            except OSError:
                # drop the partial record so the segment stays readable past it, then report the failure
                os.ftruncate(self._fd, self._offset)
                raise
            self._offset += len(data)
            return start, Position(self._seq, self._offset)

    def _rotate(self) -> None:
        if self.fsync_enabled:
            os.fsync(self._fd)
            self._retired.append(self._fd)
        else:
            os.close(self._fd)  # nobody syncs it, so nobody can be holding it
        self._seq += 1
        self._fd = self._open(self._seq)
        self._offset = 0

    def sync(self, upto: Position) -> None:
        """Return once everything up to ``upto`` is on stable storage (one fsync serves many callers)."""
        if not self.fsync_enabled:
            return
        with self._sync_lock:
            if self._synced >= upto:
                return
            with self._lock:
                fd, target = self._fd, Position(self._seq, self._offset)
                retired, self._retired = self._retired, []
            os.fsync(fd)
            self._synced = target
            for old in retired:
                if old != fd:
                    os.close(old)

    def read_from(self, start: Position) -> Iterator[Record]:
        """Every intact record at or after ``start``, in order, across segments."""
        for seq in self.segments():
            if seq < start.segment:
                continue
            path = self.directory / _segment_name(seq)
            with open(path, "rb") as f:
                data = f.read()
            offset = start.offset if seq == start.segment else 0
            while offset + _HEADER.size <= len(data):
                magic, kind, team_id, received_ns, length, crc = _HEADER.unpack_from(data, offset)
                body_start = offset + _HEADER.size
                payload = data[body_start : body_start + length]
                if magic != MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
                    break  # torn tail of a crashed run
                end = body_start + length
                yield Record(kind, team_id, received_ns, payload, Position(seq, offset), Position(seq, end))
                offset = end

    def delete_segments_before(self, seq: int) -> None:
        for old in self.segments():
            if old < seq and old != self._seq:
                (self.directory / _segment_name(old)).unlink(missing_ok=True)

    def close(self) -> None:
        with self._sync_lock, self._lock:
            if self.fsync_enabled:
                os.fsync(self._fd)
            for fd in [*self._retired, self._fd]:
                os.close(fd)
            self._retired = []
