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
