"""From acknowledged capture requests to stored rows: the events writer's insert step.

``EventsInserter`` is the ``DurableWriter`` inserter for capture. For the batches it is handed (in WAL
order) it drops events whose uuid it has just stored (SDK retries), runs person processing, and inserts
persons, then distinct ids, then events — each with a deduplication token derived from the WAL range, so
a retried or replayed insert is stored once. Persons go first so an event never names a person that is
not stored yet. Merges then move earlier events of merged-away persons (a background mutation).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import OrderedDict
from typing import Any

import orjson
import pyarrow as pa

from logpond.events.batch import EventBatch, decode_capture_request, decode_wal_payload, event_batch
from logpond.events.persons import Mapping, Person, PersonProcessor, Stamps
from logpond.ingest.wal import Record
from logpond.query import ast
from logpond.query.printer import print_query
from logpond.query.schema import EVENT_TABLES
from logpond.store.base import QueryLimits, Store
from logpond.store.schema import EVENT_ARROW_SCHEMA, PERSON_ARROW_SCHEMA, PERSON_DISTINCT_ID_ARROW_SCHEMA

log = logging.getLogger(__name__)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LOOKUP_CHUNK = 5_000
_SEED_WINDOW = dt.timedelta(hours=1)
_PERSON_FIELDS = ("id", "created_at", "last_seen_at", "properties", "is_identified", "is_deleted", "version")
_LOOKUP_LIMITS = QueryLimits(max_execution_time=60.0, max_result_rows=1_000_000)


def decode_capture_record(record: Record, *, max_decompressed_bytes: int) -> EventBatch:
    """Rebuild the events of an acknowledged capture request from its WAL record."""
    body, query, content_type, content_encoding = decode_wal_payload(record.payload)
    _, events = decode_capture_request(
        body,
        query=query,
        content_type=content_type,
        content_encoding=content_encoding,
        received_ns=record.received_ns,
        max_decompressed_bytes=max_decompressed_bytes,
    )
    return event_batch(record.team_id, events, record.received_ns)


class StorePersonSource:
    """``PersonSource`` over the store, through the printer like every other read."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _select(self, team_id: int, table: str, fields: list[str], where: ast.Expr | None) -> list[list[Any]]:
        node = ast.Select(
            select=tuple(ast.Field(f) for f in fields), from_=ast.JoinExpr(ast.TableRef(table)), where=where
        )
        sql = print_query(
            node, team_id=team_id, database=self.store.database, limits=_LOOKUP_LIMITS, tables=EVENT_TABLES
        )
        return self.store.execute(sql).rows

    def distinct_ids(self, team_id: int, distinct_ids: list[str]) -> dict[str, Mapping]:
        out: dict[str, Mapping] = {}
        for start in range(0, len(distinct_ids), _LOOKUP_CHUNK):
            chunk = distinct_ids[start : start + _LOOKUP_CHUNK]
            where = ast.Compare("in", ast.Field("distinct_id"), ast.Constant(chunk))
            for distinct_id, person_id, deleted, version in self._select(
                team_id, "raw_person_distinct_ids", ["distinct_id", "person_id", "is_deleted", "version"], where
            ):
                out[distinct_id] = Mapping(None if deleted else person_id, int(version))
        return out

    def persons(self, team_id: int, person_ids: list[str]) -> dict[str, Person]:
        out: dict[str, Person] = {}
        for start in range(0, len(person_ids), _LOOKUP_CHUNK):
            chunk = person_ids[start : start + _LOOKUP_CHUNK]
            where = ast.Compare("in", ast.Field("id"), ast.Constant(chunk))
            rows = self._select(team_id, "raw_persons", list(_PERSON_FIELDS), where)
            for row in rows:
                person = _person_from_row(team_id, row)
                out[person.id] = person
        return out

    def count_distinct_ids(self, team_id: int) -> int:
        node = ast.Select(select=(ast.Call("count", ()),), from_=ast.JoinExpr(ast.TableRef("raw_person_distinct_ids")))
        sql = print_query(
            node, team_id=team_id, database=self.store.database, limits=_LOOKUP_LIMITS, tables=EVENT_TABLES
        )
        return int(self.store.execute(sql).rows[0][0])

    def all_distinct_ids(self, team_id: int) -> dict[str, Mapping]:
        rows = self._select(
            team_id, "raw_person_distinct_ids", ["distinct_id", "person_id", "is_deleted", "version"], None
        )
        return {d: Mapping(None if deleted else p, int(v)) for d, p, deleted, v in rows}

    def all_persons(self, team_id: int) -> dict[str, Person]:
        rows = self._select(team_id, "raw_persons", list(_PERSON_FIELDS), None)
        return {row[0]: _person_from_row(team_id, row) for row in rows}

    def distinct_ids_of(self, team_id: int, person_id: str) -> dict[str, Mapping]:
        where = ast.Compare("=", ast.Field("person_id"), ast.Constant(person_id))
        rows = self._select(
            team_id, "raw_person_distinct_ids", ["distinct_id", "person_id", "is_deleted", "version"], where
        )
        return {d: Mapping(p, int(v)) for d, p, deleted, v in rows if not deleted}


def _micros(text: str | None) -> int | None:
    """Microseconds since the epoch of a DateTime64 as the store returns it (UTC, no zone)."""
    if text is None:
        return None
    moment = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    return (moment - _EPOCH) // dt.timedelta(microseconds=1)


def _person_from_row(team_id: int, row: list[Any]) -> Person:
    person_id, created_at, last_seen_at, properties, identified, deleted, version = row

    try:
        props = orjson.loads(properties) if properties else {}
    except orjson.JSONDecodeError:
        props = {}
    return Person(
        id=person_id,
        team_id=team_id,
        created_at_us=_micros(created_at) or 0,
        properties=props if isinstance(props, dict) else {},
        is_identified=bool(identified),
        version=int(version),
        last_seen_us=_micros(last_seen_at),
        is_deleted=bool(deleted),
    )


class EventsInserter:
    """The events writer's insert step (see the module docstring). Runs on the writer thread only."""

    def __init__(self, store: Store, *, person_cache: int = 500_000, recent_uuids: int = 1_000_000) -> None:
        self.store = store
        self.persons = PersonProcessor(StorePersonSource(store), max_cached=person_cache)
        self.recent_uuids = recent_uuids
        self._recent: OrderedDict[tuple[int, str], None] = OrderedDict()
        self._seeded: set[int] = set()  # projects whose recent uuids were read from the store this run
        self.stats = {"duplicates_dropped": 0, "events_inserted": 0, "merges": 0}

    def __call__(self, batches: list[Any], token: str) -> None:
        columns: dict[str, list[Any]] = {name: [] for name in EVENT_ARROW_SCHEMA.names}
        fresh: dict[tuple[int, str], None] = {}  # this insert's (project, uuid), in order
        for batch in batches:
            batch = self._without_duplicates(batch, fresh)
            if batch.num_rows:
                self._append(columns, batch, self.persons.process(batch))
        changes = self.persons.changes()
        self.store.insert_rows("persons", _persons_table(changes.persons), dedup_token=f"{token}:persons")
        self.store.insert_rows(
            "person_distinct_ids", _distinct_ids_table(changes.distinct_ids), dedup_token=f"{token}:pdi"
        )
        events = pa.Table.from_pydict(columns, schema=EVENT_ARROW_SCHEMA)
        self.store.insert_rows("events", events, dedup_token=f"{token}:events")
        for team, moves in _final_moves(changes.merges).items():
            self.store.reassign_events(team, moves)
        self.persons.confirm()
        self._remember(fresh)
        self.stats["events_inserted"] += events.num_rows
        self.stats["merges"] += len(changes.merges)

    def _seed(self, team: int) -> None:
        """Remember the project's last stored uuids, once per run: an SDK that timed out before a restart
        retries its batch after it, and that batch is already stored."""
        self._seeded.add(team)
        since = dt.datetime.now(dt.UTC) - _SEED_WINDOW
        node = ast.Select(
            select=(ast.Field("uuid"),),
            from_=ast.JoinExpr(ast.TableRef("events")),
            where=ast.And(
                (
                    ast.Compare(">", ast.Field("created_at"), ast.Constant(since)),
                    # retried events were captured recently, so their timestamps are recent too (unless
                    # the sender backdates them): this bound lets ClickHouse read a few partitions' hours
                    ast.Compare(">", ast.Field("timestamp"), ast.Constant(since - _SEED_WINDOW)),
                )
            ),
            order_by=(ast.OrderExpr(ast.Field("created_at"), "DESC"),),
            limit=self.recent_uuids,
        )
        sql = print_query(node, team_id=team, database=self.store.database, limits=_LOOKUP_LIMITS, tables=EVENT_TABLES)
        self._remember({(team, row[0]): None for row in reversed(self.store.execute(sql).rows)})

    def _without_duplicates(self, batch: EventBatch, fresh: dict[tuple[int, str], None]) -> EventBatch:
        """``batch`` minus events whose (project, uuid) was stored recently or came earlier in this insert."""
        team = batch.team_id
        if team not in self._seeded:
            self._seed(team)
        keep = []
        for row, event_uuid in enumerate(batch.uuids):
            key = (team, event_uuid)
            if key in self._recent or key in fresh:
                self.stats["duplicates_dropped"] += 1
                continue
            fresh[key] = None
            keep.append(row)
        if len(keep) == batch.num_rows:
            return batch
        return _select_rows(batch, keep)

    def _remember(self, keys: dict[tuple[int, str], None]) -> None:
        for key in keys:
            self._recent[key] = None
        while len(self._recent) > self.recent_uuids:
            self._recent.popitem(last=False)

    @staticmethod
    def _append(columns: dict[str, list[Any]], batch: EventBatch, stamps: Stamps) -> None:
        n = batch.num_rows
        columns["uuid"] += batch.uuids
        columns["team_id"] += [batch.team_id] * n
        columns["event"] += batch.events
        columns["distinct_id"] += batch.distinct_ids
        columns["properties"] += batch.properties
        columns["timestamp"] += batch.timestamps
        columns["created_at"] += [batch.received_us] * n
        columns["elements_chain"] += batch.elements_chains
        columns["person_id"] += stamps.person_ids
        columns["person_properties"] += stamps.person_properties
        columns["person_created_at"] += stamps.person_created_at_us
        columns["person_mode"] += stamps.person_modes


def _final_moves(merges: list[tuple[int, str, str]]) -> dict[int, list[tuple[str, str]]]:
    """Per project, each merged-away person id with the person it finally belongs to: after a -> b and
    then b -> c in one insert, a's events go straight to c."""
    into: dict[tuple[int, str], str] = {}
    for team, old, new in merges:
        into[(team, old)] = new
    out: dict[int, list[tuple[str, str]]] = {}
    for (team, old), new in into.items():
        seen = {old}
        while (team, new) in into and new not in seen:
            seen.add(new)
            new = into[(team, new)]
        if new != old:
            out.setdefault(team, []).append((old, new))
    return out


def _select_rows(batch: EventBatch, keep: list[int]) -> EventBatch:
    renumber = {old: new for new, old in enumerate(keep)}
    out = EventBatch(team_id=batch.team_id, received_us=batch.received_us)
    for old in keep:
        out.uuids.append(batch.uuids[old])
        out.events.append(batch.events[old])
        out.distinct_ids.append(batch.distinct_ids[old])
        out.properties.append(batch.properties[old])
        out.timestamps.append(batch.timestamps[old])
        out.elements_chains.append(batch.elements_chains[old])
    out.personless = {renumber[r] for r in batch.personless if r in renumber}
    out.updates = [u._replace(row=renumber[u.row]) for u in batch.updates if u.row in renumber]
    return out


def _persons_table(persons: list[Person]) -> pa.Table:
    return pa.Table.from_pydict(
        {
            "id": [p.id for p in persons],
            "team_id": [p.team_id for p in persons],
            "created_at": [p.created_at_us for p in persons],
            "last_seen_at": [p.last_seen_us for p in persons],
            "properties": [p.properties_json() for p in persons],
            "is_identified": [int(p.is_identified) for p in persons],
            "is_deleted": [int(p.is_deleted) for p in persons],
            "version": [p.version for p in persons],
        },
        schema=PERSON_ARROW_SCHEMA,
    )


def _distinct_ids_table(rows: list[tuple[int, str, str, int, bool]]) -> pa.Table:
    return pa.Table.from_pydict(
        {
            "team_id": [r[0] for r in rows],
            "distinct_id": [r[1] for r in rows],
            "person_id": [r[2] or "00000000-0000-0000-0000-000000000000" for r in rows],
            "is_deleted": [int(r[4]) for r in rows],
            "version": [r[3] for r in rows],
        },
        schema=PERSON_DISTINCT_ID_ARROW_SCHEMA,
    )
