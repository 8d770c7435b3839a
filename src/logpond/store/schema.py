"""The shape of a batch of log rows on its way into the store.

Ingestion (OTLP decoding, the demo generator) produces ``pyarrow.Table`` objects with exactly
``LOG_ARROW_SCHEMA``; the writer appends them to the write-ahead log and inserts them into the ``logs``
table. Columns the store derives itself (``time_bucket``, ``resource_fingerprint``,
``original_expiry_timestamp``) are not part of the batch.
"""

from __future__ import annotations

import pyarrow as pa

STR_MAP = pa.map_(pa.string(), pa.string())
TS_US = pa.timestamp("us", tz="UTC")

LOG_ARROW_SCHEMA = pa.schema(
    [
        pa.field("team_id", pa.int32(), nullable=False),
        # canonical UUIDv7 text, e.g. "0197a0b2-...": time-ordered, unique per record
        pa.field("uuid", pa.string(), nullable=False),
        # raw id bytes: 16 for a trace id, 8 for a span id, b"" when the record has none
        pa.field("trace_id", pa.binary(), nullable=False),
        pa.field("span_id", pa.binary(), nullable=False),
        pa.field("trace_flags", pa.uint8(), nullable=False),
        pa.field("timestamp", TS_US, nullable=False),
        pa.field("observed_timestamp", TS_US, nullable=False),
        pa.field("body", pa.string(), nullable=False),
        # one of trace, debug, info, warn, error, fatal
        pa.field("severity_text", pa.string(), nullable=False),
        pa.field("severity_number", pa.uint8(), nullable=False),
        pa.field("service_name", pa.string(), nullable=False),
        pa.field("resource_attributes", STR_MAP, nullable=False),
        # "name@version", "name" or ""
        pa.field("instrumentation_scope", pa.string(), nullable=False),
        pa.field("event_name", pa.string(), nullable=False),
        # string values as they are; other OTLP values JSON-encoded
        pa.field("attributes", STR_MAP, nullable=False),
    ]
)

LOG_COLUMNS: tuple[str, ...] = tuple(LOG_ARROW_SCHEMA.names)


# --- product events and persons (written by logpond.events.ingest) ---------------------------------
# UUIDs travel as canonical text and are converted by the insert; timestamps are microseconds, UTC.

EVENT_ARROW_SCHEMA = pa.schema(
    [
        pa.field("uuid", pa.string(), nullable=False),
        pa.field("team_id", pa.int32(), nullable=False),
        pa.field("event", pa.string(), nullable=False),
        pa.field("distinct_id", pa.string(), nullable=False),
        pa.field("properties", pa.string(), nullable=False),
        pa.field("timestamp", TS_US, nullable=False),
        pa.field("created_at", TS_US, nullable=False),
        pa.field("elements_chain", pa.string(), nullable=False),
        pa.field("person_id", pa.string(), nullable=False),
        pa.field("person_properties", pa.string(), nullable=False),
        pa.field("person_created_at", TS_US, nullable=False),
        pa.field("person_mode", pa.string(), nullable=False),
    ]
)

PERSON_ARROW_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("team_id", pa.int32(), nullable=False),
        pa.field("created_at", TS_US, nullable=False),
        pa.field("last_seen_at", TS_US, nullable=True),
        pa.field("properties", pa.string(), nullable=False),
        pa.field("is_identified", pa.uint8(), nullable=False),
        pa.field("is_deleted", pa.uint8(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
    ]
)

PERSON_DISTINCT_ID_ARROW_SCHEMA = pa.schema(
    [
        pa.field("team_id", pa.int32(), nullable=False),
        pa.field("distinct_id", pa.string(), nullable=False),
        pa.field("person_id", pa.string(), nullable=False),
        pa.field("is_deleted", pa.uint8(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
    ]
)

# table name -> (schema of its insert batches, columns holding UUID text)
ROW_TABLES: dict[str, tuple[pa.Schema, frozenset[str]]] = {
    "events": (EVENT_ARROW_SCHEMA, frozenset({"uuid", "person_id"})),
    "persons": (PERSON_ARROW_SCHEMA, frozenset({"id"})),
    "person_distinct_ids": (PERSON_DISTINCT_ID_ARROW_SCHEMA, frozenset({"person_id"})),
}
