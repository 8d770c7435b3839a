"""The collaborators one running logpond shares: settings, metadata, store, writer, clock, caches.

``create_app`` builds one ``Services`` and hangs it on ``app.state.services``; nothing is a module-level
singleton, so tests build as many independent apps as they like.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from logpond.api.auth import TTLCache
from logpond.config import Settings
from logpond.hogql.jobs import QueryJobs, RateLimiter
from logpond.hogql.parser import ParserPool
from logpond.hogql.runner import HogQLLimits, HogQLRunner
from logpond.ingest.pipeline import exit_with_parent
from logpond.ingest.watermark import IngestWatermark
from logpond.ingest.writer import DurableWriter
from logpond.meta.secretbox import SecretBox
from logpond.query import ast
from logpond.query.printer import print_query
from logpond.store.base import QueryLimits, QueryResult, Store


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Services:
    settings: Settings
    meta: Any  # logpond.meta.MetaDB
    store: Store
    writer: DurableWriter | None = None
    events_writer: DurableWriter | None = None  # capture: person processing and events, own WAL
    decode_pool: Executor | None = None  # worker processes for OTLP decoding, started in the app lifespan
    clock: Callable[[], dt.datetime] = utc_now
    auth_cache: TTLCache = field(default_factory=lambda: TTLCache(10.0))
    project_cache: TTLCache = field(default_factory=lambda: TTLCache(10.0))
    ingest_watermark: IngestWatermark = field(default_factory=IngestWatermark)
    hogql_parser: ParserPool | None = None
    hogql_runner: HogQLRunner | None = None
    query_jobs: QueryJobs | None = None
    query_rate_limiter: RateLimiter | None = None
    read_rate_limiter: RateLimiter | None = None  # the events and persons APIs
    alert_scheduler: Any = None  # logpond.alerts.scheduler.AlertScheduler, started in the app lifespan
    _secret_box: SecretBox | None = None

    def __post_init__(self) -> None:
        s = self.settings
        if self.hogql_parser is None:
            self.hogql_parser = ParserPool(processes=s.hogql_parse_processes, timeout=s.hogql_parse_timeout)
        if self.hogql_runner is None:
            self.hogql_runner = HogQLRunner(self.hogql_parser, self.store.database)
        if self.query_jobs is None:
            self.query_jobs = QueryJobs(
                max_running=s.hogql_max_concurrent_per_project,
                queue_seconds=s.hogql_queue_seconds,
                ttl_seconds=s.hogql_async_result_seconds,
                clock=self.clock,
            )
        if self.query_rate_limiter is None:
            self.query_rate_limiter = RateLimiter(
                [(s.hogql_rate_limit_per_minute, 60.0), (s.hogql_rate_limit_per_hour, 3600.0)]
            )
        if self.read_rate_limiter is None:
            self.read_rate_limiter = RateLimiter(
                [(s.api_read_rate_limit_per_minute, 60.0), (s.api_read_rate_limit_per_hour, 3600.0)]
            )

    @property
    def secret_box(self) -> SecretBox:
        """Encrypts and decrypts the secrets stored in the metadata database (read or created on first use)."""
        if self._secret_box is None:
            self._secret_box = SecretBox.for_data_dir(self.settings.data_dir, self.settings.secret_key)
        return self._secret_box

    def hogql_limits(self, *, personal_key: bool) -> HogQLLimits:
        """The bounds of one HogQL query; personal API keys get PostHog's shorter time limit and no OFFSET."""
        s = self.settings
        return HogQLLimits(
            default_limit=min(s.hogql_default_limit, s.hogql_max_limit),
            max_limit=s.hogql_max_limit,
            max_execution_time=s.hogql_personal_key_max_execution_time if personal_key else s.hogql_max_execution_time,
            max_memory_usage=s.query_max_memory_bytes,
            allow_offset=s.hogql_allow_offset_with_personal_key or not personal_key,
        )

    def start_decode_pool(self) -> None:
        if self.settings.ingest_decode_processes > 0 and self.decode_pool is None:
            # spawn, not fork: the server process already runs chDB's threads
            self.decode_pool = ProcessPoolExecutor(
                self.settings.ingest_decode_processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=exit_with_parent,
                initargs=(os.getpid(),),
            )

    def restart_decode_pool(self, broken: Executor) -> None:
        """Replace ``broken`` (unless another request already did)."""
        if self.decode_pool is broken:
            self.decode_pool = None
            broken.shutdown(wait=False, cancel_futures=True)
            self.start_decode_pool()

    def stop_decode_pool(self) -> None:
        if self.decode_pool is not None:
            self.decode_pool.shutdown(wait=True, cancel_futures=True)
            self.decode_pool = None

    @property
    def limits(self) -> QueryLimits:
        s = self.settings
        return QueryLimits(
            max_execution_time=s.query_max_execution_time,
            max_memory_usage=s.query_max_memory_bytes,
            max_result_rows=s.query_max_result_rows,
        )

    def run_query(
        self, node: ast.Select | ast.SelectUnion, *, team_id: int, limits: QueryLimits | None = None
    ) -> QueryResult:
        """Print ``node`` for ``team_id`` (the printer adds isolation and limits) and run it. Blocking."""
        sql = print_query(node, team_id=team_id, database=self.store.database, limits=limits or self.limits)
        return self.store.execute(sql)

    def live_checkpoint(self) -> dt.datetime:
        """An instant before which every acknowledged log is queryable (microsecond precision).

        Requests still decoding are read first, then the writer's queue: a request leaves the first only
        after it is in the second, so none slips between the two reads.
        """
        candidates = [self.ingest_watermark.snapshot()]
        if self.writer is not None:
            oldest = self.writer.oldest_queued_received_ns()
            if oldest is not None:
                candidates.append(oldest)
        micros = min(candidates) // 1000
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
