"""Every logpond setting, declared once.

Each field is read from the environment as ``LOGPOND_<NAME>`` (and from CLI flags where ``serve`` offers
them). ``docs/settings.md`` documents every field; a test fails when one is missing there.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOGPOND_", extra="ignore")

    # --- where things live -------------------------------------------------------------------------
    data_dir: Path = Field(
        Path(".logpond"),
        description="Directory holding the chDB store, the write-ahead log and the SQLite metadata database.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the metadata database. Unset: SQLite at <data_dir>/meta.sqlite3. PostgreSQL: postgresql+psycopg://user:pass@host/db.",
    )

    # --- HTTP server -------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to. Loopback unless you ask otherwise.")
    port: int = Field(8000, description="Port the HTTP server listens on.")
    public_url: str | None = Field(
        None, description="Absolute base URL used in pagination links (next/previous). Unset: taken from the request."
    )

    # --- ingestion limits --------------------------------------------------------------------------
    max_request_bytes: int = Field(
        20 * 1024 * 1024, description="Largest accepted request body, compressed, in bytes (413 above)."
    )
    max_decompressed_bytes: int = Field(
        100 * 1024 * 1024,
        description="Largest accepted body after gzip decompression, in bytes (413 above). "
        "Decompression stops as soon as it is exceeded.",
    )
    ingest_decode_processes: int = Field(
        1,
        description="Worker processes that decode OTLP and capture requests, so decoding runs beside the server "
        "process (which keeps HTTP, the write-ahead log and store inserts). 0 decodes inside the server process.",
    )
    retention_days: int = Field(
        30, description="Days a log is kept before its partition is dropped (TTL on original_expiry_timestamp)."
    )

    # --- durable batching writer -------------------------------------------------------------------
    writer_queue_max_rows: int = Field(
        2_000_000,
        description="Rows acknowledged but not yet inserted into the store; "
        "above this, ingestion answers 503 with Retry-After.",
    )
    writer_batch_max_rows: int = Field(200_000, description="Most rows coalesced into one store insert.")
    writer_flush_interval_ms: int = Field(
        200, description="Longest time an acknowledged row waits before the writer inserts it."
    )
    wal_fsync: bool = Field(
        True, description="fsync the write-ahead log before acknowledging. Turn off only for throwaway data."
    )
    wal_segment_max_bytes: int = Field(
        64 * 1024 * 1024, description="Size at which the write-ahead log starts a new segment file."
    )

    # --- event capture -----------------------------------------------------------------------------
    capture_max_batch_bytes: int = Field(
        20 * 1024 * 1024, description="Largest accepted body of /batch/, compressed, in bytes (413 above)."
    )
    capture_max_event_bytes: int = Field(
        2 * 1024 * 1024,
        description="Largest accepted body of /capture/, /e/, /i/v0/e/ and /track/, compressed, in bytes (413 above).",
    )
    events_writer_queue_max_rows: int = Field(
        1_000_000,
        description="Events acknowledged but not yet inserted into the store; "
        "above this, capture answers 503 with Retry-After.",
    )
    events_writer_batch_max_rows: int = Field(100_000, description="Most events coalesced into one store insert.")
    person_cache_size: int = Field(
        500_000,
        description="Distinct ids (and as many persons) person processing keeps in memory; the rest is read "
        "from the store when an event needs it.",
    )
    capture_recent_uuids: int = Field(
        1_000_000,
        description="Event uuids remembered after insertion, so an SDK's retry of a stored batch is not stored twice.",
    )

    # --- queries -----------------------------------------------------------------------------------
    query_max_execution_time: float = Field(
        60.0, description="Seconds any store query may run (ClickHouse max_execution_time)."
    )
    query_max_memory_bytes: int = Field(
        4 * 1024**3, description="Memory one store query may use (ClickHouse max_memory_usage)."
    )
    query_max_result_rows: int = Field(100_000, description="Rows any store query may return before it is cut off.")

    # --- HogQL (/api/projects/<id>/query/) ----------------------------------------------------------
    hogql_max_execution_time: float = Field(
        60.0, description="Seconds a HogQL query may run (ClickHouse max_execution_time); above it the answer is 504."
    )
    hogql_personal_key_max_execution_time: float = Field(
        10.0, description="Seconds a HogQL query may run when the caller uses a personal API key, as in PostHog."
    )
    hogql_default_limit: int = Field(100, ge=1, description="Rows returned when a HogQL query has no LIMIT.")
    hogql_max_limit: int = Field(
        50_000, ge=1, description="Largest LIMIT a HogQL query may ask for; larger ones are clamped."
    )
    hogql_allow_offset_with_personal_key: bool = Field(
        False,
        description="Accept OFFSET in HogQL queries made with a personal API key. PostHog refuses them (400) and "
        "asks for keyset pagination.",
    )
    hogql_max_concurrent_per_project: int = Field(
        3, ge=1, description="HogQL queries one project may run at the same time; more wait in a queue."
    )
    hogql_queue_seconds: float = Field(
        30.0, description="Seconds a HogQL query waits for a free slot of its project before the answer is 429."
    )
    hogql_rate_limit_per_minute: int = Field(
        240,
        ge=0,
        description="HogQL queries a project may start per minute with personal API keys (PostHog's burst "
        "limit); more answer 429 with Retry-After. 0 turns the limit off.",
    )
    hogql_rate_limit_per_hour: int = Field(
        2400,
        ge=0,
        description="HogQL queries a project may start per hour with personal API keys (PostHog's "
        "sustained limit). 0 turns the limit off.",
    )
    api_read_rate_limit_per_minute: int = Field(
        240,
        ge=0,
        description="Events and persons API requests a project may make per minute with personal API keys "
        "(PostHog's limit for ClickHouse-backed reads); more answer 429 with Retry-After. 0 turns the limit off.",
    )
    api_read_rate_limit_per_hour: int = Field(
        1200,
        ge=0,
        description="Events and persons API requests a project may make per hour with personal API keys "
        "(PostHog's sustained limit). 0 turns the limit off.",
    )
    hogql_parse_processes: int = Field(
        2,
        ge=0,
        description="Worker processes that parse HogQL, so a pathological query cannot stall the server. 0 parses "
        "in the server process, with no parse timeout.",
    )
    hogql_parse_warm_up: bool = Field(
        True, description="Start a HogQL parser process when the server starts, not on the first query."
    )
    hogql_parse_timeout: float = Field(
        2.0, description="Seconds one HogQL parse may take before its worker is killed and the answer is 400."
    )
    hogql_query_sessions: int = Field(
        2, ge=1, description="chDB sessions that run HogQL queries side by side, apart from ingestion and the Logs API."
    )
    hogql_async_result_seconds: float = Field(
        600.0, description="Seconds the result of an async HogQL query stays available for polling."
    )

    # --- exports -----------------------------------------------------------------------------------
    export_max_concurrent: int = Field(
        2,
        ge=1,
        description="Log exports written at the same time; another export request meanwhile answers 429 "
        "with Retry-After.",
    )

    # --- log alerts --------------------------------------------------------------------------------
    alerts_scheduler: bool = Field(
        True, description="Run the alert scheduler in the server process (checks due alerts every tick)."
    )
    alerts_tick_seconds: float = Field(60.0, gt=0, description="Seconds between two ticks of the alert scheduler.")
    alerts_max_per_project: int = Field(20, ge=1, description="Alerts one project may have (PostHog allows 20).")
    alerts_max_per_tick: int = Field(5000, ge=1, description="Most alerts one scheduler tick claims and checks.")
    alerts_claim_lease_seconds: float = Field(
        600.0,
        gt=0,
        description="Seconds a scheduler's claim on the alerts it checks lasts; if that server dies meanwhile, "
        "another may check them after this.",
    )
    alerts_check_max_execution_time: float = Field(
        30.0, description="Seconds one alert check query may run (ClickHouse max_execution_time)."
    )
    alerts_check_max_memory_bytes: int = Field(
        5 * 1024**3, description="Memory one alert check query may use (ClickHouse max_memory_usage)."
    )
    alerts_check_alerts_per_query: int = Field(
        200,
        ge=1,
        description="Alerts with attribute filters counted together in one query on the logs (one countIf per "
        "alert and window).",
    )
    alerts_event_retention_days: int = Field(90, ge=1, description="Days an alert's history entries are kept.")
    alerts_allow_http_loopback: bool = Field(
        False,
        description="Accept http://127.0.0.1, http://localhost and http://[::1] destination URLs (for tests and "
        "local receivers). Otherwise destinations must be https://.",
    )
    alerts_delivery_timeout_seconds: float = Field(
        10.0, gt=0, description="Seconds one notification delivery attempt may take (connect and answer)."
    )
    alerts_delivery_attempts: int = Field(
        3, ge=1, le=10, description="Attempts per notification: network errors, 5xx and 429 are retried."
    )
    alerts_delivery_backoff_seconds: float = Field(
        0.5, ge=0, description="Wait before the second delivery attempt; it doubles for each later one."
    )
    alerts_delivery_threads: int = Field(4, ge=1, description="Notifications sent at the same time during a tick.")
    alerts_slack_api_url: str = Field(
        "https://slack.com/api", description="Base URL of Slack's Web API, for destinations with a bot token."
    )

    secret_key: str | None = Field(
        None,
        description="Key that encrypts the secrets logpond must read back (Slack tokens, webhook signing secrets, "
        "destination URLs) in the metadata database; 32 characters or more. Unset: a random key in "
        "<data_dir>/secret.key. Servers sharing one PostgreSQL must set the same key.",
    )

    # --- auth --------------------------------------------------------------------------------------
    auth_cache_seconds: float = Field(
        10.0, description="Seconds a verified personal API key or project token is cached in memory."
    )

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "chdb"

    @property
    def wal_dir(self) -> Path:
        return self.data_dir / "wal"

    @property
    def events_wal_dir(self) -> Path:
        return self.data_dir / "wal-events"

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'meta.sqlite3').resolve()}"
