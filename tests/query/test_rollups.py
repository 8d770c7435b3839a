"""The rollups that materialized views keep at ingestion (``log_counts``, ``log_attribute_keys``,
``log_attribute_values``), checked on a real chDB store against counts made in Python from the very Arrow
batches inserted: after several inserts, after a replayed insert, and after migration 2's backfill of logs
stored before the rollups existed. Also: ``LogCounter`` reads whole minutes from ``log_counts`` and the
partial minutes at a range's edges from the logs.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from logpond.demo import generate_log_tables
from logpond.logs.aggregates import LogCounter
from logpond.logs.filters import LogsFilters
from logpond.query.printer import print_query
from logpond.store import chdb_store
from logpond.store.chdb_store import ChDBStore
from logpond.store.migrations import MIGRATIONS
from tests._log_tables import log_bytes, log_row, log_table

NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)


def _text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _minute(moment: dt.datetime) -> str:
    return _text(moment.replace(second=0, microsecond=0))


def _ten_minutes(moment: dt.datetime) -> str:
    return _text(moment.replace(minute=moment.minute - moment.minute % 10, second=0, microsecond=0))


def _rows(tables: Iterable[pa.Table]) -> Iterator[dict[str, Any]]:
    for table in tables:
        yield from table.to_pylist()


def expected_counts(tables: Iterable[pa.Table]) -> Counter[tuple[Any, ...]]:
    """(team, minute, service, severity, "logs" | "bytes") -> total, computed from the inserted rows."""
    totals: Counter[tuple[Any, ...]] = Counter()
    for row in _rows(tables):
        key = (row["team_id"], _minute(row["timestamp"]), row["service_name"], row["severity_text"])
        totals[(*key, "logs")] += 1
        totals[(*key, "bytes")] += log_bytes(row)
    return totals


def expected_attributes(tables: Iterable[pa.Table]) -> tuple[Counter[tuple[Any, ...]], Counter[tuple[Any, ...]]]:
    """Key counts (team, type, bucket, service, key) and value counts (team, type, key, bucket, value: not
    per service); values only for keys and values under 256 bytes."""
    keys: Counter[tuple[Any, ...]] = Counter()
    values: Counter[tuple[Any, ...]] = Counter()
    for row in _rows(tables):
        bucket = _ten_minutes(row["timestamp"])
        for kind, pairs in (("log", row["attributes"]), ("resource", row["resource_attributes"])):
            for key, value in pairs:
                keys[(row["team_id"], kind, bucket, row["service_name"], key)] += 1
                if len(key.encode()) < 256 and len(value.encode()) < 256:
                    values[(row["team_id"], kind, key, bucket, value)] += 1
    return keys, values


def stored_counts(store: ChDBStore) -> Counter[tuple[Any, ...]]:
    result = store.execute(
        f"SELECT team_id, toString(minute), service_name, severity_text, sum(logs), sum(bytes) "
        f"FROM {store.database}.log_counts GROUP BY team_id, minute, service_name, severity_text"
    )
    totals: Counter[tuple[Any, ...]] = Counter()
    for team, minute, service, severity, logs, size in result.rows:
        totals[(team, minute, service, severity, "logs")] = int(logs)
        totals[(team, minute, service, severity, "bytes")] = int(size)
    return totals


def stored_attributes(store: ChDBStore) -> tuple[Counter[tuple[Any, ...]], Counter[tuple[Any, ...]]]:
    db = store.database
    keys = store.execute(
        f"SELECT team_id, attribute_type, toString(time_bucket), service_name, attribute_key, sum(attribute_count) "
        f"FROM {db}.log_attribute_keys GROUP BY team_id, attribute_type, time_bucket, service_name, attribute_key"
    )
    values = store.execute(
        f"SELECT team_id, attribute_type, attribute_key, toString(time_bucket), attribute_value, "
        f"sum(attribute_count) FROM {db}.log_attribute_values "
        "GROUP BY team_id, attribute_type, attribute_key, time_bucket, attribute_value"
    )
    return (
        Counter({tuple(row[:-1]): int(row[-1]) for row in keys.rows}),
        Counter({tuple(row[:-1]): int(row[-1]) for row in values.rows}),
    )


def stored_logs(store: ChDBStore) -> int:
    return int(store.execute(f"SELECT count() FROM {store.database}.logs").rows[0][0])


def assert_rollups_match(store: ChDBStore, tables: list[pa.Table]) -> None:
    assert stored_counts(store) == expected_counts(tables)
    assert stored_attributes(store) == expected_attributes(tables)


def odd_rows(team_id: int, start: dt.datetime) -> pa.Table:
    """Rows the demo does not make: the empty service, non-ASCII text, a 300-character value and key."""
    return log_table(
        [
            log_row(start, body="é ✓", severity="fatal", attributes={"ключ": "значение", "long": "v" * 300}),
            log_row(start + dt.timedelta(seconds=59.999999), body="", service="api", attributes={"k" * 300: "x"}),
            log_row(
                start + dt.timedelta(minutes=10),
                body="plain",
                severity="trace",
                service="api",
                resource={"region": "eu"},
            ),
        ],  # fmt: skip
        team_id=team_id,
    )


def demo(team_id: int, seed: int, rows: int = 1500) -> list[pa.Table]:
    return list(generate_log_tables(rows, team_id=team_id, days=0.05, seed=seed, end=NOW, batch_rows=500))


def test_rollups_equal_counts_of_the_inserted_logs(store: ChDBStore) -> None:
    """After seven inserts for two projects, every rollup row totals exactly what Python counts."""
    tables = [*demo(1, seed=1), *demo(2, seed=2, rows=500), odd_rows(1, NOW - dt.timedelta(hours=3))]
    tables.append(odd_rows(2, NOW - dt.timedelta(hours=3)))
    for table in tables:
        store.insert_logs(table)
    assert stored_logs(store) == 2006
    assert_rollups_match(store, tables)
    counts = stored_counts(store)
    assert sum(v for k, v in counts.items() if k[-1] == "logs") == 2006
    # the hand-made fatal log: "é ✓" (6 bytes) + "ключ" (8) + "значение" (16) + "long" (4) + 300 v's
    fatal = (1, _minute(NOW - dt.timedelta(hours=3)), "", "fatal", "bytes")
    assert counts[fatal] == 334
    _, values = stored_attributes(store)
    assert not [key for key in values if key[2] == "long" or key[2].startswith("kkk")]


def test_replayed_insert_adds_nothing_to_the_rollups(store: ChDBStore) -> None:
    """Inserting the same batch again with the same dedup token changes neither logs nor rollups; a new
    token counts it again."""
    first = demo(1, seed=5, rows=800)
    for i, table in enumerate(first):
        store.insert_logs(table, dedup_token=f"seg-1:{i}")
    for i, table in enumerate(first):
        store.insert_logs(table, dedup_token=f"seg-1:{i}")
    assert stored_logs(store) == 800
    assert_rollups_match(store, first)
    store.insert_logs(first[0], dedup_token="seg-2:0")
    assert stored_logs(store) == 800 + first[0].num_rows
    assert_rollups_match(store, [*first, first[0]])


def test_migration_2_backfills_logs_stored_before_it(chdb_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Logs stored under schema 1 are counted once by migration 2; later inserts through the views; running
    the migration's statements again (as after an interruption) still counts each log once."""
    store = ChDBStore(chdb_path, database=f"t_{uuid.uuid4().hex[:12]}")
    try:
        with monkeypatch.context() as patch:
            patch.setattr(chdb_store, "MIGRATIONS", MIGRATIONS[:1])
            assert store.migrate() == [1]
        before = [*demo(1, seed=7, rows=600), odd_rows(3, NOW - dt.timedelta(hours=2))]
        for table in before:
            store.insert_logs(table)
        tables = store.execute(f"SELECT name FROM system.tables WHERE database = '{store.database}'").rows
        assert sorted(row[0] for row in tables) == ["logs", "schema_migrations"]

        assert store.migrate() == [2, 3, 4]
        assert store.applied_migrations() == [1, 2, 3, 4]
        assert_rollups_match(store, before)

        after = demo(1, seed=8, rows=300)
        for table in after:
            store.insert_logs(table)
        assert_rollups_match(store, before + after)

        for statement in MIGRATIONS[1].statements:
            store.command(statement.format(db=store.database))
        assert_rollups_match(store, before + after)
        assert store.migrate() == []
    finally:
        store.drop_database()


# --- which source LogCounter reads ------------------------------------------------------------------------------


def test_counter_reads_whole_minutes_from_rollup_and_edges_from_logs(store: ChDBStore) -> None:
    """A planted rollup row inside the range's whole minutes is counted, ones in the partial edge minutes
    are not (those come from the logs), and a search term reads only the logs."""
    start = NOW - dt.timedelta(hours=1)
    logs = [
        log_row(start + dt.timedelta(seconds=s), body="real", severity="info", service="api")
        for s in (10, 30.5, 45, 90, 150.25, 200)
    ]
    store.insert_logs(log_table(logs, team_id=1))
    for minute, extra in ((0, 1000), (1, 100), (3, 10_000)):
        store.command(
            f"INSERT INTO {store.database}.log_counts VALUES "
            f"(1, '{_minute(start + dt.timedelta(minutes=minute))}', 'api', 'info', today() + 30, {extra}, 0)"
        )

    def execute(select: Any) -> Any:
        return store.execute(print_query(select, team_id=1, database=store.database, limits=None))

    counter = LogCounter(execute)
    # [start + 30.5 s, start + 3 min 20 s): partial minute 0, whole minutes 1 and 2, partial minute 3
    filters = LogsFilters(date_from=start + dt.timedelta(seconds=30.5), date_to=start + dt.timedelta(seconds=200))
    assert counter.counts(filters)[(None,)][0] == 4 + 100
    searched = LogsFilters(filters.date_from, filters.date_to, search_term="real")
    assert counter.counts(searched)[(None,)][0] == 4
    per_minute = counter.counts(filters, interval=60, by=("service_name",))
    minute = dt.timedelta(minutes=1)
    assert {((key[0] - start) // minute, key[1]): value[0] for key, value in per_minute.items()} == {
        (0, "api"): 2,
        (1, "api"): 101,
        (2, "api"): 1,
    }
    # a range inside one minute never reads the rollup
    inside = LogsFilters(date_from=start + dt.timedelta(seconds=5), date_to=start + dt.timedelta(seconds=50))
    assert counter.counts(inside)[(None,)][0] == 3
