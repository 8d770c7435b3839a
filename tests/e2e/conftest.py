"""Fixtures for the end-to-end tests: real ``logpond serve`` subprocesses on free loopback ports.

Every server a test starts is killed at teardown, whatever happened; when a test fails, the tail of each
of its servers' output is attached to the failure report.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e._server import Credentials, LogpondClient, ServerProcess

StartServer = Callable[..., ServerProcess]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for server in getattr(item, "_logpond_servers", []):
            report.sections.append((f"logpond server output ({server.log_path})", server.log_tail()))
    return report


@pytest.fixture
def start_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartServer]:
    """Factory: ``start_server(start=True, **ServerProcess kwargs)`` -> a server with its own data dir."""
    servers: list[ServerProcess] = []
    request.node._logpond_servers = servers

    def make(*, start: bool = True, **kwargs: Any) -> ServerProcess:
        n = len(servers) + 1
        kwargs.setdefault("data_dir", tmp_path / f"server{n}" / "data")
        server = ServerProcess(log_path=tmp_path / f"server{n}.log", **kwargs)
        servers.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server()


@pytest.fixture
def credentials(server: ServerProcess) -> Credentials:
    return server.credentials()


@pytest.fixture
def client(server: ServerProcess, credentials: Credentials) -> Iterator[LogpondClient]:
    c = LogpondClient(server.base_url, credentials.key, credentials.project_id)
    yield c
    c.close()
