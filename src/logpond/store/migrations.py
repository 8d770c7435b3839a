"""Versioned ClickHouse schema migrations, shared by every ClickHouse-speaking engine.

Each migration is a version number, a name and the statements to run. Applied versions are recorded in
``<db>.schema_migrations``; a migration runs once, in order. Statements use ``{db}`` for the database
name so one server (or one chDB data dir) can hold several isolated databases, as the tests do.
Never edit a migration that has shipped: add a new one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


LOGS_TABLE = """
CREATE TABLE IF NOT EXISTS {db}.logs
(
    team_id Int32,
    -- day of the record: the first sort key after the team, so time ranges prune whole days
    time_bucket DateTime MATERIALIZED toStartOfDay(timestamp),
    uuid UUID,
    trace_id FixedString(16) CODEC(ZSTD(1)),
    span_id FixedString(8) CODEC(ZSTD(1)),
    trace_flags UInt8,
    timestamp DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    observed_timestamp DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    body String CODEC(ZSTD(9)),
    severity_text LowCardinality(String),
    severity_number UInt8,
    service_name LowCardinality(String),
    resource_attributes Map(LowCardinality(String), String) CODEC(ZSTD(9)),
    resource_fingerprint UInt64 MATERIALIZED cityHash64(resource_attributes),
    instrumentation_scope LowCardinality(String),
    event_name LowCardinality(String),
    attributes Map(LowCardinality(String), String) CODEC(ZSTD(9)),
    original_expiry_timestamp DateTime('UTC'),
    INDEX idx_body_ngram lowerUTF8(body) TYPE ngrambf_v1(3, 25000, 2, 0) GRANULARITY 1,
    INDEX idx_attribute_keys mapKeys(attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attribute_values mapValues(attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_observed observed_timestamp TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(original_expiry_timestamp)
-- newest logs of a project and service are a reverse range read; other time ranges prune by day
ORDER BY (team_id, time_bucket, service_name, timestamp)
TTL original_expiry_timestamp
-- parts are fsynced before an insert returns: the writer deletes WAL segments once their rows are in
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000,
    fsync_after_insert = 1, fsync_part_directory = 1
"""

MIGRATIONS: tuple[Migration, ...] = (Migration(1, "create_logs", (LOGS_TABLE,)),)
