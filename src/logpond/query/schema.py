"""The tables a query may read, by logical name, and how their fields map to stored columns.

A field is a template over the table's alias ``{t}``: most are plain columns, some are expressions
(``trace_id`` reads as upper-case hex of the stored bytes). Hidden fields are usable by logpond's own
query builders (e.g. raw id bytes for index-friendly filters) but are not listed by ``SELECT *``.
"""

from __future__ import annotations

from dataclasses import dataclass

from logpond.store.migrations import LOG_BYTES_EXPR


@dataclass(frozen=True)
class FieldDef:
    template: str
    type: str
    hidden: bool = False


@dataclass(frozen=True)
class TableDef:
    name: str
    physical: str  # table name inside the store's database
    fields: dict[str, FieldDef]
    team_column: str = "team_id"

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
