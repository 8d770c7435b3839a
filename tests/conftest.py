"""Shared fixtures: a real chDB store, a real metadata DB, and the app served in-process over HTTP.

chDB opens one data path per process, so the whole session shares one path and every test gets its own
ClickHouse database inside it (and its own SQLite metadata file and WAL directory).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from logpond.app import build_services, create_app
from logpond.config import Settings
from logpond.services import Services
from logpond.store.chdb_store import ChDBStore


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def store(chdb_path: Path) -> ChDBStore:
    s = ChDBStore(chdb_path, database=f"t_{uuid.uuid4().hex[:12]}")
    s.migrate()
    yield s
    s.drop_database()


@dataclass
class Env:
    """One running logpond: its HTTP client, collaborators, default project and an all-scopes key."""

    client: httpx.AsyncClient
    services: Services
    project: Any
    key: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    async def send_otlp(self, body: bytes, token: str | None = None, **headers: str) -> httpx.Response:
        return await self.client.post(
            "/i/v1/logs",
            content=body,
            headers={
                "Authorization": f"Bearer {token or self.project.api_token}",
                "Content-Type": "application/x-protobuf",
                **headers,
            },
        )

    def flush(self) -> None:
        assert self.services.writer is not None
        assert self.services.writer.flush(timeout=30)

    async def query(
        self, query: dict[str, Any], project_id: int | None = None, key: str | None = None
    ) -> httpx.Response:
        pid = project_id or self.project.id
        return await self.client.post(f"/api/projects/{pid}/logs/query/", json={"query": query}, headers=self.auth(key))

    def new_key(self, scopes: list[str], scoped_teams: list[int] | None = None) -> str:
        meta = self.services.meta
        plain, _ = meta.create_personal_api_key(meta.get_admin_user().id, "test", scopes, scoped_teams=scoped_teams)
        return plain


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    # decoding in-process keeps each test's app cheap to start; tests/api/test_decode_pool.py and the
    # end-to-end tests run the default worker-process decoding
    # PostHog's per-project query rate limits are tested on their own (tests/api/test_query_api.py); suites
    # that send hundreds of queries to one project within a minute run without them
    values: dict[str, Any] = {
        "writer_flush_interval_ms": 20,
        "ingest_decode_processes": 0,
        "hogql_rate_limit_per_minute": 0,
        "hogql_rate_limit_per_hour": 0,
        "api_read_rate_limit_per_minute": 0,
        "api_read_rate_limit_per_hour": 0,
        "hogql_parse_warm_up": False,
        # alert tests tick the scheduler themselves, with a clock they move
        "alerts_scheduler": False,
        "alerts_allow_http_loopback": True,
        **overrides,
    }
    return Settings(data_dir=tmp_path / "data", **values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def env(settings: Settings, store: ChDBStore) -> AsyncIterator[Env]:
    async with running_env(settings, store) as e:
        yield e


class running_env:
    """Build, start (lifespan: writer + WAL replay) and stop an app around ``store``."""

    def __init__(self, settings: Settings, store: ChDBStore) -> None:
        self.settings = settings
        self.store = store

    async def __aenter__(self) -> Env:
        services = build_services(self.settings, store=self.store)
        boot = services.meta.bootstrap()
        project = boot.project if boot else services.meta.get_project(1)
        self.app = create_app(self.settings, services=services)
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://testserver")
        admin = services.meta.get_admin_user()
        key, _ = services.meta.create_personal_api_key(admin.id, "all", ["*"])
        return Env(client=self.client, services=services, project=project, key=key)

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        await self._lifespan.__aexit__(None, None, None)
        self.app.state.services.meta.close()
