"""``create_app``: the ASGI application, built from its collaborators.

Routes are written without trailing slashes; ``PathNormaliser`` strips one from every request and maps
``/api/environments/<id>/...`` onto ``/api/projects/<id>/...`` before routing, so both spellings of every
PostHog URL work without redirects.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from logpond import __version__
from logpond.api import alerts, capture, events, exports, ingest_logs, logs, logs_explore, projects, query
from logpond.api.auth import TTLCache
from logpond.api.errors import install_error_handlers
from logpond.config import Settings
from logpond.events.ingest import EventsInserter, decode_capture_record
from logpond.ingest.pipeline import decode_wal_record
from logpond.ingest.writer import DurableWriter
from logpond.services import Services, utc_now
from logpond.store.base import Store

log = logging.getLogger(__name__)


class PathNormaliser:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                path = path.rstrip("/") or "/"
            if path.startswith("/api/environments/"):
                path = "/api/projects/" + path[len("/api/environments/") :]
            if path != scope["path"]:
                scope = dict(scope)
                scope["logpond_original_path"] = scope["path"]  # for absolute next/previous URLs
                scope["path"] = path
                scope["raw_path"] = path.encode()
        await self.app(scope, receive, send)


def build_services(
    settings: Settings, *, meta: Any = None, store: Store | None = None, clock: Callable[[], Any] | None = None
) -> Services:
    """Open (and migrate) the metadata database and the store named by ``settings``."""
    if meta is None:
        from logpond.meta import MetaDB

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        meta = MetaDB(settings.effective_database_url)
        meta.migrate()
    if store is None:
        from logpond.store.chdb_store import ChDBStore

        store = ChDBStore(
            settings.store_dir, retention_days=settings.retention_days, query_sessions=settings.hogql_query_sessions
        )
        store.migrate()
    return Services(
        settings=settings,
        meta=meta,
        store=store,
        clock=clock or utc_now,
        auth_cache=TTLCache(settings.auth_cache_seconds),
        project_cache=TTLCache(settings.auth_cache_seconds),
    )


def logs_writer(services: Services) -> DurableWriter:
    """The writer of OTLP logs: its WAL under ``wal/``, rows inserted as decoded."""
    settings = services.settings
    return _writer(
        services,
        settings.wal_dir,
        lambda record: decode_wal_record(record, max_decompressed_bytes=settings.max_decompressed_bytes),
        queue_max_rows=settings.writer_queue_max_rows,
        batch_max_rows=settings.writer_batch_max_rows,
    )


def events_writer(services: Services) -> DurableWriter:
    """The writer of captured events: its own WAL, person processing in its insert step."""
    settings = services.settings
    return _writer(
        services,
        settings.events_wal_dir,
        lambda record: decode_capture_record(record, max_decompressed_bytes=settings.max_decompressed_bytes),
        queue_max_rows=settings.events_writer_queue_max_rows,
        batch_max_rows=settings.events_writer_batch_max_rows,
        inserter=EventsInserter(
            services.store, person_cache=settings.person_cache_size, recent_uuids=settings.capture_recent_uuids
        ),
        name="logpond-events-writer",
    )


def _writer(services: Services, wal_dir: Any, decoder: Any, **options: Any) -> DurableWriter:
    settings = services.settings
    return DurableWriter(
        services.store,
        wal_dir,
        decoder,
        flush_interval=settings.writer_flush_interval_ms / 1000,
        fsync=settings.wal_fsync,
        segment_max_bytes=settings.wal_segment_max_bytes,
        **options,
    )


def create_app(settings: Settings, *, services: Services | None = None, with_writer: bool = True) -> FastAPI:
    services = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.start_decode_pool()
        if settings.hogql_parse_warm_up and services.hogql_parser is not None:
            threading.Thread(target=services.hogql_parser.warm_up, name="hogql-parser-start", daemon=True).start()
        if with_writer and services.writer is None:
            services.writer = logs_writer(services)
            services.writer.start()
        if with_writer and services.events_writer is None:
            services.events_writer = events_writer(services)
            services.events_writer.start()
        if settings.alerts_scheduler and services.alert_scheduler is None:
            from logpond.alerts.scheduler import AlertScheduler

            services.alert_scheduler = AlertScheduler(services)
            services.alert_scheduler.start()
        try:
            yield
        finally:
            assert services.hogql_parser is not None
            services.hogql_parser.close()
            services.stop_decode_pool()
            if services.alert_scheduler is not None:
                services.alert_scheduler.stop()
                services.alert_scheduler = None
            if services.writer is not None:
                services.writer.stop()
                services.writer = None
            if services.events_writer is not None:
                services.events_writer.stop()
                services.events_writer = None

    app = FastAPI(title="logpond", version=__version__, lifespan=lifespan, redirect_slashes=False)
    app.state.services = services
    install_error_handlers(app)
    app.include_router(ingest_logs.router)
    app.include_router(capture.router)
    app.include_router(logs.router)
    app.include_router(logs_explore.router)
    app.include_router(exports.router)
    app.include_router(projects.router)
    app.include_router(query.router)
    app.include_router(events.router)
    app.include_router(alerts.router)

    @app.get("/_health", include_in_schema=False)
    async def health() -> dict[str, Any]:
        writer, events, scheduler = services.writer, services.events_writer, services.alert_scheduler
        error = writer.last_error if writer else None
        events_error = events.last_error if events else None
        alerts_error = scheduler.last_error if scheduler else None
        return {
            "status": "degraded" if error or events_error or alerts_error else "ok",
            "queued_rows": writer.queued_rows if writer else 0,
            "writer_error": error,
            "queued_events": events.queued_rows if events else 0,
            "events_writer_error": events_error,
            "alert_scheduler_error": alerts_error,
        }

    app.add_middleware(PathNormaliser)
    return app
