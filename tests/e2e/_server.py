"""A real ``logpond serve`` in a subprocess, for end-to-end tests.

``ServerProcess`` starts the installed ``logpond`` command on a free loopback port with its own data
directory, waits (bounded) until ``GET /_health`` answers, and can be killed with SIGKILL, stopped with
SIGTERM and started again on the same data directory and port. Everything the server prints goes to one
log file (appended across restarts) so a failing test can show its tail. The administrative commands
(``logpond keys create``, ``logpond projects ...``) run as their own subprocesses against the same data
directory, as an operator would run them next to a live server.

Outside pytest it is a context manager; inside, use the fixtures in ``tests/e2e/conftest.py``.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 60.0


def logpond_command() -> list[str]:
    """The ``logpond`` console script of this interpreter's environment (the venv under test)."""
    script = Path(sys.executable).with_name("logpond")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "logpond.cli"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Credentials:
    """What a client needs: a personal API key (all scopes) and the default project's id and token."""

    key: str
    project_id: int
    token: str


class ServerStartError(RuntimeError):
    pass


class ServerProcess:
    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        pass_data_dir: bool = True,
        cwd: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.pass_data_dir = pass_data_dir  # False: rely on LOGPOND_DATA_DIR in ``env``
        self.cwd = cwd
        self._extra_env = dict(env or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0  # where the current run's output starts in the log file
        self.starts = 0
        atexit.register(self.stop)  # backstop if the test session dies before fixture teardown

    # --- lifecycle ---------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOGPOND_")}
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self._extra_env)
        return env

    def set_env(self, **values: str | None) -> None:
        """Change the environment of the next start (``None`` removes a variable), e.g. a setting."""
        for name, value in values.items():
            if value is None:
                self._extra_env.pop(name, None)
            else:
                self._extra_env[name] = value

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Start ``logpond serve`` and return once ``/_health`` answers 200 (or raise with the log tail)."""
        if self.running:
            raise RuntimeError("server is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [*logpond_command(), "serve", "--host", HOST, "--port", str(self.port)]
        if self.pass_data_dir:
            command += ["--data-dir", str(self.data_dir)]
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            log.write(f"\n===== e2e: start #{self.starts + 1}: {' '.join(command)}\n".encode())
            log.flush()
            self._log_offset = log.tell()
            self._proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env(),
                cwd=self.cwd,
                start_new_session=True,
            )
        self.starts += 1
        self._wait_healthy(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        with httpx.Client(base_url=self.base_url, timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    raise ServerStartError(
                        f"logpond serve exited with {self._proc.returncode} before answering /_health\n"
                        + self.log_tail()
                    )
                try:
                    response = client.get("/_health")
                    if response.status_code == 200:
                        return
                    last_error = f"HTTP {response.status_code}"
                except httpx.TransportError as exc:
                    last_error = repr(exc)
                time.sleep(0.1)
        self.kill_9()
        raise ServerStartError(f"/_health did not answer within {timeout:.0f} s ({last_error})\n" + self.log_tail())

    def kill_9(self) -> None:
        """SIGKILL the server: no shutdown code runs, exactly like a crash or the OOM killer."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
        self._proc.wait(timeout=STOP_TIMEOUT_S)
        self._mark(f"killed with SIGKILL (exit {self._proc.returncode})")

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM the server and wait for a graceful exit; return its exit code."""
        if self._proc is None:
            raise RuntimeError("server was never started")
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill_9()
                message = f"logpond serve ignored SIGTERM for {timeout:.0f} s\n" + self.log_tail()
                raise RuntimeError(message) from None
        self._mark(f"exited after SIGTERM (exit {self._proc.returncode})")
        return self._proc.returncode

    def restart(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Stop (gracefully, if still running) and start again on the same data dir and port."""
        if self.running:
            self.terminate()
        self.start(timeout)

    def stop(self) -> None:
        """Make sure no server process is left behind (fixture teardown)."""
        if self.running:
            self.kill_9()

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- output ------------------------------------------------------------------------------------------

    def _mark(self, text: str) -> None:
        with open(self.log_path, "a") as log:
            log.write(f"===== e2e: {text}\n")

    def output(self, *, current_run_only: bool = True) -> str:
        """What the server printed (since its latest start, or over all runs)."""
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as log:
            if current_run_only:
                log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        tail = self.output(current_run_only=False).splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    # --- the administrative CLI --------------------------------------------------------------------------

    def cli(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None, pass_data_dir: bool | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``logpond <args> --data-dir <this server's data dir>`` and return the finished process."""
        command = [*logpond_command(), *args]
        if self.pass_data_dir if pass_data_dir is None else pass_data_dir:
            command += ["--data-dir", str(self.data_dir)]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env={**self.env(), **(env or {})},
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited with {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def cli_json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self.cli(*args, "--json", **kwargs).stdout)

    def credentials(self) -> Credentials:
        """A fresh all-scopes personal API key and the first project's id and token, via the CLI."""
        key = self.cli_json("keys", "create", "--scopes", "*", "--label", "e2e")["key"]
        project = self.cli_json("projects", "list")[0]
        return Credentials(key=key, project_id=int(project["id"]), token=project["api_token"])


class LogpondClient:
    """A small synchronous client for the read API of one server, with a personal API key."""

    def __init__(self, base_url: str, key: str, project_id: int) -> None:
        self.project_id = project_id
        self.http = httpx.Client(
            base_url=base_url, timeout=30.0, trust_env=False, headers={"Authorization": f"Bearer {key}"}
        )

    def close(self) -> None:
        self.http.close()

    def query(self, query: dict[str, Any], project_id: int | None = None) -> dict[str, Any]:
        pid = project_id or self.project_id
        response = self.http.post(f"/api/projects/{pid}/logs/query/", json={"query": query})
        assert response.status_code == 200, response.text
        doc: dict[str, Any] = response.json()
        return doc

    def count(self, query: dict[str, Any], project_id: int | None = None) -> int:
        pid = project_id or self.project_id
        response = self.http.post(f"/api/projects/{pid}/logs/count/", json={"query": query})
        assert response.status_code == 200, response.text
        return int(response.json()["count"])

    def walk(self, query: dict[str, Any], *, max_pages: int = 1000) -> list[list[dict[str, Any]]]:
        """Every page of a LogsQuery, following ``nextCursor`` until ``hasMore`` is false."""
        pages: list[list[dict[str, Any]]] = []
        cursor: str | None = None
        for _ in range(max_pages):
            doc = self.query({**query, "after": cursor} if cursor else query)
            pages.append(doc["results"])
            if not doc["hasMore"]:
                assert doc["nextCursor"] is None
                return pages
            cursor = doc["nextCursor"]
            assert cursor, "hasMore without a nextCursor"
        raise AssertionError(f"cursor walk did not end within {max_pages} pages")

    def wait_for_count(self, query: dict[str, Any], expected: int, timeout: float = 10.0) -> int:
        """Poll ``count`` until it reaches ``expected`` and the writer has finished its insert (bounded);
        return the last count seen.

        ``count`` reads the per-minute rollup, which an insert's materialized view can commit a moment
        before the insert's own part of the logs table; a search only returns logs whose insert has
        finished (its live checkpoint), so a test that searches next waits for the writer too.
        """
        deadline = time.monotonic() + timeout
        seen = self.count(query)
        while time.monotonic() < deadline:
            if seen >= expected and self.http.get("/_health").json()["queued_rows"] == 0:
                break
            time.sleep(0.1)
            seen = self.count(query)
        return seen

    def wait_until_stable(self, query: dict[str, Any], timeout: float = 15.0) -> int:
        """Poll until the writer's queue is empty and ``count`` stops changing; return the count."""
        deadline = time.monotonic() + timeout
        previous = -1
        while time.monotonic() < deadline:
            queued = self.http.get("/_health").json()["queued_rows"]
            current = self.count(query)
            if queued == 0 and current == previous:
                return current
            previous = current
            time.sleep(0.3)
        raise AssertionError(f"count did not settle within {timeout:.0f} s (last {previous})")


@contextmanager
def module_server(tmp: Path) -> Iterator[ServerProcess]:
    """A server for a whole test module, on a data directory under ``tmp``, stopped at the end."""
    process = ServerProcess(tmp / "data", tmp / "server.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@contextmanager
def api_client(server: ServerProcess, credentials: Credentials) -> Iterator[httpx.Client]:
    """An HTTP client of ``server`` that sends the personal API key of ``credentials``."""
    headers = {"Authorization": f"Bearer {credentials.key}"}
    with httpx.Client(base_url=server.base_url, timeout=30.0, trust_env=False, headers=headers) as client:
        yield client


@dataclass(frozen=True)
class Project:
    id: int
    token: str


def new_project(server: ServerProcess, name: str) -> Project:
    """A fresh project of a running server (through the CLI), so a test's counts are about its own events."""
    created = server.cli_json("projects", "create", name[:100])
    return Project(id=int(created["id"]), token=created["api_token"])
