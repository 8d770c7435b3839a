"""The tables a query may read, by logical name, and how their fields map to stored columns.

A field is a template over the table's alias ``{t}``: most are plain columns, some are expressions
(``trace_id`` reads as upper-case hex of the stored bytes). Hidden fields are usable by logpond's own
query builders (e.g. raw id bytes for index-friendly filters) but are not listed by ``SELECT *``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from logpond.store.migrations import LOG_BYTES_EXPR


@dataclass(frozen=True)
class FieldDef:
    template: str
    type: str
    hidden: bool = False
    json: bool = False  # a String holding a JSON object: ``properties.$browser`` extracts a key

    @property
    def kind(self) -> str | None:
        """How keys after the field are read: ``map`` (``attributes.k``), ``json``, or None (no keys)."""
        if self.json:
            return "json"
        if self.type.startswith("Map("):
            return "map"
        return None


@dataclass(frozen=True)
class TableDef:
    name: str
    physical: str  # table name inside the store's database
    fields: dict[str, FieldDef]
    team_column: str = "team_id"
    final: bool = False  # read with FINAL: a ReplacingMergeTree whose latest version per key is the row
    sampling: bool = False  # the table has a SAMPLE BY key
    row_condition: str | None = None  # a condition over ``{t}`` every read adds (e.g. not deleted)
    # virtual tables on the row, e.g. events' ``person``: ``person.properties.email`` -> a stamped column
    nested: dict[str, dict[str, FieldDef]] = field(default_factory=dict)

    def has_field(self, name: str) -> bool:
        return name in self.fields or name in self.nested

    def visible_fields(self) -> list[str]:
        return [name for name, f in self.fields.items() if not f.hidden]


def _col(name: str, type_: str, hidden: bool = False) -> FieldDef:
    return FieldDef("{t}." + name, type_, hidden)


LOGS = TableDef(
    name="logs",
    physical="logs",
    fields={
        "uuid": _col("uuid", "UUID"),
        "team_id": _col("team_id", "Int32", hidden=True),
        "trace_id": FieldDef("hex({t}.trace_id)", "String"),
        "span_id": FieldDef("hex({t}.span_id)", "String"),
        "trace_flags": _col("trace_flags", "UInt8"),
        "timestamp": _col("timestamp", "DateTime64(6, 'UTC')"),
        "observed_timestamp": _col("observed_timestamp", "DateTime64(6, 'UTC')"),
        "time_bucket": _col("time_bucket", "DateTime"),
        "body": _col("body", "String"),
        "message": _col("body", "String", hidden=True),
        "severity_text": _col("severity_text", "LowCardinality(String)"),
        "severity_number": _col("severity_number", "UInt8"),
        "level": _col("severity_text", "LowCardinality(String)", hidden=True),
        "service_name": _col("service_name", "LowCardinality(String)"),
        "resource_attributes": _col("resource_attributes", "Map(String, String)"),
        "resource_fingerprint": _col("resource_fingerprint", "UInt64"),
        "instrumentation_scope": _col("instrumentation_scope", "String"),
        "event_name": _col("event_name", "String"),
        "attributes": _col("attributes", "Map(String, String)"),
        # raw stored bytes, for filters that should use the bloom-filter index
        "_trace_id_bytes": _col("trace_id", "FixedString(16)", hidden=True),
        "_span_id_bytes": _col("span_id", "FixedString(8)", hidden=True),
        # body plus attribute keys and values, the size the sparkline ranks by
        "_bytes_uncompressed": FieldDef(LOG_BYTES_EXPR.format(t="{t}."), "UInt64", hidden=True),
    },
)


def _columns(**types: str) -> dict[str, FieldDef]:
    return {name: _col(name, type_) for name, type_ in types.items()}


# rollups fed at ingestion (store/migrations.py); readers sum() the counts, merges may lag
LOG_COUNTS = TableDef(
    name="log_counts",
    physical="log_counts",
    fields=_columns(
        team_id="Int32",
        minute="DateTime('UTC')",
        service_name="LowCardinality(String)",
        severity_text="LowCardinality(String)",
        logs="UInt64",
        bytes="UInt64",
    ),
)

LOG_ATTRIBUTE_KEYS = TableDef(
    name="log_attribute_keys",
    physical="log_attribute_keys",
    fields=_columns(
        team_id="Int32",
        attribute_type="LowCardinality(String)",
        time_bucket="DateTime('UTC')",
        service_name="LowCardinality(String)",
        attribute_key="String",
        attribute_count="UInt64",
    ),
)

LOG_ATTRIBUTE_VALUES = TableDef(
    name="log_attribute_values",
    physical="log_attribute_values",
    fields=_columns(
        team_id="Int32",
        attribute_type="LowCardinality(String)",
        attribute_key="LowCardinality(String)",
        time_bucket="DateTime('UTC')",
        attribute_value="String",
        attribute_count="UInt64",
    ),
)

TABLES: dict[str, TableDef] = {t.name: t for t in (LOGS, LOG_COUNTS, LOG_ATTRIBUTE_KEYS, LOG_ATTRIBUTE_VALUES)}


# --- what HogQL sees -------------------------------------------------------------------------------
# HogQL reads PostHog's tables by PostHog's names. logpond's rollups are internal, and the logs table's
# raw-bytes helper fields are for logpond's own query builders, so neither is offered to users.

HOGQL_LOGS = TableDef(
    name="logs",
    physical="logs",
    fields={name: f for name, f in LOGS.fields.items() if not name.startswith("_")},
)

EVENTS = TableDef(
    name="events",
    physical="events",
    fields={
        "uuid": _col("uuid", "UUID"),
        "team_id": _col("team_id", "Int32", hidden=True),
        "event": _col("event", "String"),
        "distinct_id": _col("distinct_id", "String"),
        "properties": FieldDef("{t}.properties", "String", json=True),
        "timestamp": _col("timestamp", "DateTime64(6, 'UTC')"),
        "created_at": _col("created_at", "DateTime64(6, 'UTC')"),
        "elements_chain": _col("elements_chain", "String"),
        "person_id": _col("person_id", "UUID"),
        "person_properties": FieldDef("{t}.person_properties", "String", hidden=True, json=True),
        "person_created_at": _col("person_created_at", "DateTime64(3, 'UTC')", hidden=True),
        "$session_id": _col("`$session_id`", "String"),
        "$window_id": _col("`$window_id`", "String"),
        "person_mode": _col("person_mode", "LowCardinality(String)"),
    },
    sampling=True,
    # PostHog's persons-on-events: the person as it was when the event was ingested, without a join
    nested={
        name: {
            "id": _col("person_id", "UUID"),
            "properties": FieldDef("{t}.person_properties", "String", json=True),
            "created_at": _col("person_created_at", "DateTime64(3, 'UTC')"),
        }
        for name in ("person", "poe")
    },
)

PERSONS = TableDef(
    name="persons",
    physical="persons",
    fields={
        "id": _col("id", "UUID"),
        "team_id": _col("team_id", "Int32", hidden=True),
        "created_at": _col("created_at", "DateTime64(3, 'UTC')"),
        "last_seen_at": _col("last_seen_at", "Nullable(DateTime64(3, 'UTC'))"),
        "properties": FieldDef("{t}.properties", "String", json=True),
        "is_identified": FieldDef("toBool({t}.is_identified)", "Bool"),
    },
    final=True,
    row_condition="{t}.is_deleted = 0",
)

PERSON_DISTINCT_IDS = TableDef(
    name="person_distinct_ids",
    physical="person_distinct_ids",
    fields={
        "distinct_id": _col("distinct_id", "String"),
        "person_id": _col("person_id", "UUID"),
        "team_id": _col("team_id", "Int32", hidden=True),
    },
    final=True,
    row_condition="{t}.is_deleted = 0",
)

HOGQL_TABLES: dict[str, TableDef] = {t.name: t for t in (HOGQL_LOGS, EVENTS, PERSONS, PERSON_DISTINCT_IDS)}

# Ingestion reads every version's newest row, deleted or not, to write the next version after it.
RAW_PERSONS = TableDef(
    name="raw_persons",
    physical="persons",
    fields={
        **PERSONS.fields,
        "is_identified": _col("is_identified", "UInt8"),
        "is_deleted": _col("is_deleted", "UInt8"),
        "version": _col("version", "Int64"),
    },
    final=True,
)

RAW_PERSON_DISTINCT_IDS = TableDef(
    name="raw_person_distinct_ids",
    physical="person_distinct_ids",
    fields={
        **PERSON_DISTINCT_IDS.fields,
        "is_deleted": _col("is_deleted", "UInt8"),
        "version": _col("version", "Int64"),
    },
    final=True,
)

# what logpond's own events and persons code reads (the events API, person processing)
EVENT_TABLES: dict[str, TableDef] = {**HOGQL_TABLES, **{t.name: t for t in (RAW_PERSONS, RAW_PERSON_DISTINCT_IDS)}}
