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

# What a log weighs before compression, for ranking by volume: the body plus attribute keys and values.
# The same expression is the hidden ``_bytes_uncompressed`` field of the ``logs`` query table.
LOG_BYTES_EXPR = (
    "length({t}body) + arraySum(arrayMap(k -> length(k), mapKeys({t}attributes)))"
    " + arraySum(arrayMap(v -> length(v), mapValues({t}attributes)))"
)

# Rollups kept current at ingestion by materialized views, so explorer aggregates never scan raw logs.
# Every rollup is a SummingMergeTree: rows of one key are added up by merges, and readers sum() again
# because unmerged parts may still hold several rows per key. Each rollup has a deduplication window,
# so a replayed insert (same insert_deduplication_token) adds nothing to them either. Partitions follow
# the logs' expiry day and drop a day after the logs they count.
_ROLLUP_SETTINGS = (
    "SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000, "
    "fsync_after_insert = 1, fsync_part_directory = 1"
)

LOG_COUNTS_TABLE = f"""
CREATE TABLE IF NOT EXISTS {{db}}.log_counts
(
    team_id Int32,
    minute DateTime('UTC'),
    service_name LowCardinality(String),
    severity_text LowCardinality(String),
    expiry_day Date,
    logs UInt64,
    bytes UInt64
)
ENGINE = SummingMergeTree((logs, bytes))
PARTITION BY expiry_day
ORDER BY (team_id, minute, service_name, severity_text, expiry_day)
TTL expiry_day + INTERVAL 1 DAY
{_ROLLUP_SETTINGS}
"""

LOG_COUNTS_SELECT = f"""
SELECT team_id, toStartOfMinute(timestamp) AS minute, service_name, severity_text,
    toDate(original_expiry_timestamp) AS expiry_day, count() AS logs,
    sum({LOG_BYTES_EXPR.format(t="")}) AS bytes
FROM {{db}}.logs
GROUP BY team_id, minute, service_name, severity_text, expiry_day
"""

# attribute keys per 10 minutes and service: small, answers "which keys exist" without reading values
LOG_ATTRIBUTE_KEYS_TABLE = f"""
CREATE TABLE IF NOT EXISTS {{db}}.log_attribute_keys
(
    team_id Int32,
    attribute_type LowCardinality(String),
    time_bucket DateTime('UTC'),
    service_name LowCardinality(String),
    attribute_key String,
    expiry_day Date,
    attribute_count UInt64
)
ENGINE = SummingMergeTree(attribute_count)
PARTITION BY expiry_day
ORDER BY (team_id, attribute_type, time_bucket, service_name, attribute_key, expiry_day)
TTL expiry_day + INTERVAL 1 DAY
{_ROLLUP_SETTINGS}
"""

# Log attributes are ARRAY JOINed row by row. Resource attributes repeat on every log of a resource, so
# the logs are first counted per resource (fingerprint) and only then is each resource's map ARRAY JOINed:
# a few rows per resource instead of one per log.
_PER_RESOURCE = """(
    SELECT team_id, toStartOfTenMinutes(timestamp) AS time_bucket, service_name,
        toDate(original_expiry_timestamp) AS expiry_day, resource_fingerprint,
        any(resource_attributes) AS resource, count() AS logs
    FROM {db}.logs
    GROUP BY team_id, time_bucket, service_name, expiry_day, resource_fingerprint
)"""

LOG_ATTRIBUTE_KEYS_SELECT = """
SELECT team_id, 'log' AS attribute_type, toStartOfTenMinutes(timestamp) AS time_bucket, service_name,
    toString(key) AS attribute_key, toDate(original_expiry_timestamp) AS expiry_day, count() AS attribute_count
FROM {db}.logs
ARRAY JOIN mapKeys(attributes) AS key
GROUP BY team_id, attribute_type, time_bucket, service_name, attribute_key, expiry_day
"""

RESOURCE_ATTRIBUTE_KEYS_SELECT = f"""
SELECT team_id, 'resource' AS attribute_type, time_bucket, service_name, toString(key) AS attribute_key,
    expiry_day, sum(logs) AS attribute_count
FROM {_PER_RESOURCE}
ARRAY JOIN mapKeys(resource) AS key
GROUP BY team_id, attribute_type, time_bucket, service_name, attribute_key, expiry_day
"""

# Values per key and 10 minutes. Like PostHog, keys and values of 256 characters or more are left out
# (they are ids or payloads nobody picks from a list). Unlike the keys, values are not kept per service:
# that nearly halves the rows written at ingestion (many values occur in several services); a values
# request filtered by service reads the logs instead.
LOG_ATTRIBUTE_VALUES_TABLE = f"""
CREATE TABLE IF NOT EXISTS {{db}}.log_attribute_values
(
    team_id Int32,
    attribute_type LowCardinality(String),
    attribute_key LowCardinality(String),
    time_bucket DateTime('UTC'),
    attribute_value String CODEC(ZSTD(3)),
    expiry_day Date,
    attribute_count UInt64
)
ENGINE = SummingMergeTree(attribute_count)
PARTITION BY expiry_day
ORDER BY (team_id, attribute_type, attribute_key, time_bucket, attribute_value, expiry_day)
TTL expiry_day + INTERVAL 1 DAY
{_ROLLUP_SETTINGS}
"""

LOG_ATTRIBUTE_VALUES_SELECT = """
SELECT team_id, 'log' AS attribute_type, toString(key) AS attribute_key, toStartOfTenMinutes(timestamp) AS time_bucket,
    value AS attribute_value, toDate(original_expiry_timestamp) AS expiry_day, count() AS attribute_count
FROM {db}.logs
ARRAY JOIN mapKeys(attributes) AS key, mapValues(attributes) AS value
WHERE length(key) < 256 AND length(value) < 256
GROUP BY team_id, attribute_type, attribute_key, time_bucket, attribute_value, expiry_day
"""

RESOURCE_ATTRIBUTE_VALUES_SELECT = f"""
SELECT team_id, 'resource' AS attribute_type, toString(key) AS attribute_key, time_bucket,
    value AS attribute_value, expiry_day, sum(logs) AS attribute_count
FROM {_PER_RESOURCE}
ARRAY JOIN mapKeys(resource) AS key, mapValues(resource) AS value
WHERE length(key) < 256 AND length(value) < 256
GROUP BY team_id, attribute_type, attribute_key, time_bucket, attribute_value, expiry_day
"""


def _rollup(table_ddl: str, name: str, *selects: str) -> tuple[str, ...]:
    """Create a rollup table, the views that feed it from every insert into logs, and fill it once from
    the logs already stored. Migrations run before the writer starts, so nothing is counted twice, and
    the fill starts from an empty table, so a migration interrupted and run again counts once too."""
    views = tuple(
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.{name}_mv{'' if i == 0 else i + 1} TO {{db}}.{name} AS {select}"
        for i, select in enumerate(selects)
    )
    fills = tuple(f"INSERT INTO {{db}}.{name} {select}" for select in selects)
    return (table_ddl, *views, f"TRUNCATE TABLE {{db}}.{name}", *fills)


# Product events and persons, shaped as ClickHouse-backed product analytics store them: events carry the
# person's id and properties stamped at ingestion; persons and distinct-id mappings are versioned rows of
# ReplacingMergeTrees, read with FINAL, so a merge or a property change is a new row, never an update.
EVENTS_TABLE_V1 = """
CREATE TABLE IF NOT EXISTS {db}.events
(
    uuid UUID,
    team_id Int32,
    event String,
    distinct_id String,
    properties String CODEC(ZSTD(3)),
    timestamp DateTime64(6, 'UTC'),
    created_at DateTime64(6, 'UTC'),
    elements_chain String CODEC(ZSTD(3)),
    person_id UUID,
    person_properties String CODEC(ZSTD(3)),
    person_created_at DateTime64(3, 'UTC'),
    person_mode LowCardinality(String),
    `$session_id` String MATERIALIZED JSONExtractString(properties, '$session_id'),
    `$window_id` String MATERIALIZED JSONExtractString(properties, '$window_id'),
    _inserted_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(_inserted_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (team_id, toDate(timestamp), event, cityHash64(distinct_id), cityHash64(uuid))
SAMPLE BY cityHash64(distinct_id)
SETTINGS non_replicated_deduplication_window = 10000, fsync_after_insert = 1, fsync_part_directory = 1
"""

# Version 2 sorts each project's events by hour, then by event (PostHog sorts by day): a page of the
# newest or oldest events, the events API's and connectors' main read, then touches a few granules of one
# or two hours instead of every granule of a day, and ``event = …`` still skips most of each hour.
EVENTS_TABLE = """
CREATE TABLE IF NOT EXISTS {db}.events
(
    uuid UUID,
    team_id Int32,
    event String,
    distinct_id String,
    properties String CODEC(ZSTD(3)),
    timestamp DateTime64(6, 'UTC'),
    created_at DateTime64(6, 'UTC'),
    elements_chain String CODEC(ZSTD(3)),
    person_id UUID,
    person_properties String CODEC(ZSTD(3)),
    person_created_at DateTime64(3, 'UTC'),
    person_mode LowCardinality(String),
    `$session_id` String MATERIALIZED JSONExtractString(properties, '$session_id'),
    `$window_id` String MATERIALIZED JSONExtractString(properties, '$window_id'),
    _inserted_at DateTime64(6, 'UTC') DEFAULT now64(6),
    -- one person's events are spread over every hour: these let ClickHouse skip the granules without them
    INDEX distinct_id_bloom distinct_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX person_id_bloom person_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(_inserted_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (team_id, toStartOfHour(timestamp), event, cityHash64(distinct_id), cityHash64(uuid))
SAMPLE BY cityHash64(distinct_id)
SETTINGS non_replicated_deduplication_window = 10000, fsync_after_insert = 1, fsync_part_directory = 1
"""

PERSONS_TABLE = """
CREATE TABLE IF NOT EXISTS {db}.persons
(
    id UUID,
    team_id Int32,
    created_at DateTime64(3, 'UTC'),
    last_seen_at Nullable(DateTime64(3, 'UTC')),
    properties String CODEC(ZSTD(3)),
    is_identified UInt8,
    is_deleted UInt8 DEFAULT 0,
    version Int64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (team_id, id)
SETTINGS non_replicated_deduplication_window = 10000, fsync_after_insert = 1, fsync_part_directory = 1
"""

PERSON_DISTINCT_IDS_TABLE = """
CREATE TABLE IF NOT EXISTS {db}.person_distinct_ids
(
    team_id Int32,
    distinct_id String,
    person_id UUID,
    is_deleted UInt8 DEFAULT 0,
    version Int64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (team_id, distinct_id)
SETTINGS non_replicated_deduplication_window = 10000, fsync_after_insert = 1, fsync_part_directory = 1
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create_logs", (LOGS_TABLE,)),
    Migration(
        2,
        "create_rollups",
        (
            *_rollup(LOG_COUNTS_TABLE, "log_counts", LOG_COUNTS_SELECT),
            *_rollup(
                LOG_ATTRIBUTE_KEYS_TABLE,
                "log_attribute_keys",
                LOG_ATTRIBUTE_KEYS_SELECT,
                RESOURCE_ATTRIBUTE_KEYS_SELECT,
            ),
            *_rollup(
                LOG_ATTRIBUTE_VALUES_TABLE,
                "log_attribute_values",
                LOG_ATTRIBUTE_VALUES_SELECT,
                RESOURCE_ATTRIBUTE_VALUES_SELECT,
            ),
        ),
    ),
    Migration(3, "create_events_and_persons", (EVENTS_TABLE_V1, PERSONS_TABLE, PERSON_DISTINCT_IDS_TABLE)),
    # nothing captured events before version 4 (capture arrived with it), so the table is re-created empty
    Migration(4, "events_sorted_by_hour", ("DROP TABLE IF EXISTS {db}.events", EVENTS_TABLE)),
)
