"""UUIDv7 batches: valid RFC 9562 version 7 ids, unique, and sorted in generation order."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from logpond.ingest import uuid7 as uuid7_module
from logpond.ingest.uuid7 import uuid7, uuid7_batch

CANONICAL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MS = 1_750_000_000_123


def test_ids_are_canonical_version_7_with_the_given_time() -> None:
    """Every id is lower-case canonical text of an RFC 9562 v7 UUID carrying the batch millisecond."""
    for text in uuid7_batch(1000, MS):
        assert CANONICAL.match(text)
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert parsed.int >> 80 == MS


def test_ids_in_a_batch_are_unique_and_strictly_increasing() -> None:
    """A batch sorts in the order it was generated, so rows keep their arrival order."""
    ids = uuid7_batch(100_000, MS)
    assert len(set(ids)) == len(ids)
    assert all(a < b for a, b in zip(ids, ids[1:], strict=False))


def test_batches_sort_by_time() -> None:
    """Ids of a later millisecond sort after ids of an earlier one."""
    earlier = uuid7_batch(500, MS)
    later = uuid7_batch(500, MS + 1)
    assert max(earlier) < min(later)


def test_ids_are_random_across_batches_of_the_same_millisecond() -> None:
    """Two batches of one millisecond share no ids (the counter start and low bits are random)."""
    first = set(uuid7_batch(10_000, MS))
    second = set(uuid7_batch(10_000, MS))
    assert not first & second


def test_counter_overflow_moves_to_the_next_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch larger than the counter space bumps the timestamp instead of wrapping or repeating."""
    monkeypatch.setattr(uuid7_module, "_COUNTER_LIMIT", 1 << 6)
    monkeypatch.setattr(uuid7_module, "_SEED_LIMIT_BITS", 5)
    ids = uuid7_batch(1000, MS)
    assert len(set(ids)) == 1000
    assert ids == sorted(ids)
    times = [uuid.UUID(text).int >> 80 for text in ids]
    assert times[0] == MS and times[-1] > MS
    assert all(uuid.UUID(text).version == 7 for text in ids)


def test_default_time_is_now() -> None:
    """Without a timestamp the ids carry the current time."""
    before = time.time_ns() // 1_000_000
    text = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= uuid.UUID(text).int >> 80 <= after


def test_empty_batch_and_range_checks() -> None:
    """A batch of zero is empty; timestamps outside 48 bits are refused."""
    assert uuid7_batch(0, MS) == []
    with pytest.raises(ValueError):
        uuid7_batch(1, -1)
    with pytest.raises(ValueError):
        uuid7_batch(1, 1 << 48)
