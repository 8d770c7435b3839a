"""``logpond query`` as a user runs it: on the local data dir, and on a real server with ``--host``.

One data dir serves the whole module: a real ``logpond serve`` takes five logs over OTLP; the remote tests
ask it through ``/api/projects/<id>/query/`` with a personal API key, the local tests stop it first (chDB
allows one process per data dir) and read the same store directly. Both paths must print the same rows.
The server and the CLI run with a default row limit of 2, so a query without LIMIT shows truncation.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e._otlp import export_request
from tests.e2e._server import LogpondClient, ServerProcess

SEVERITY_INFO, SEVERITY_ERROR = 9, 17
ROWS_QUERY = "SELECT attributes.n AS n, service_name, level, message FROM logs ORDER BY n LIMIT 10"
EXPECTED_ROWS = [
    ["1", "api", "info", "GET /health ok"],
    ["2", "api", "info", 'payment failed, code "E42"'],
    ["3", "api", "info", "[red]not markup[/red]"],
    ["4", "web", "error", "upstream timeout"],
    ["5", "web", "error", "upstream timeout again"],
]
AGGREGATE_QUERY = (
    "SELECT service_name, count() AS c, countIf(level = 'error') AS errors, uniq(message) AS bodies "
    "FROM logs GROUP BY service_name ORDER BY service_name"
)
EXPECTED_AGGREGATES = [
    {"service_name": "api", "c": 3, "errors": 0, "bodies": 3},
    {"service_name": "web", "c": 2, "errors": 2, "bodies": 2},
]
BAD_QUERY = "SELECT message\nFROM logs\nWHERE (("  # the error is on line 3


class World:
    def __init__(self, server: ServerProcess, key: str) -> None:
        self.server = server
        self.key = key

    def running(self) -> ServerProcess:
        if not self.server.running:
            self.server.start()
        return self.server

    def stopped(self) -> ServerProcess:
        if self.server.running:
            # uvicorn re-raises the signal after a clean shutdown, so -SIGTERM is a clean exit too
            assert self.server.terminate() in (0, -signal.SIGTERM)
        return self.server

    def remote(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``logpond query ... --host <server> --api-key <key>``, as from another machine (no data dir)."""
        server = self.running()
        return server.cli("query", *args, "--host", server.base_url, "--api-key", self.key,
                          check=False, pass_data_dir=False, env=env)

    def local(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``logpond query ... --data-dir <data dir>`` with the server stopped."""
        return self.stopped().cli("query", *args, check=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root: Path = tmp_path_factory.mktemp("cli-query")
    server = ServerProcess(root / "data", root / "server.log", env={"LOGPOND_HOGQL_DEFAULT_LIMIT": "2"})
    server.start()
    try:
        credentials = server.credentials()
        now = time.time_ns()
        api = export_request(
            [(now - 5_000_000_000 + i, body, {"n": str(i + 1)}) for i, body in
             enumerate(row[3] for row in EXPECTED_ROWS[:3])],
            service="api", severity_number=SEVERITY_INFO,
        )
        web = export_request(
            [(now - 1_000_000_000 + i, row[3], {"n": row[0]}) for i, row in enumerate(EXPECTED_ROWS[3:])],
            service="web", severity_number=SEVERITY_ERROR,
        )
        with httpx.Client(base_url=server.base_url, timeout=30, trust_env=False,
                          headers={"Authorization": f"Bearer {credentials.token}"}) as http:
            for body in (api, web):
                response = http.post("/i/v1/logs", content=body)
                assert response.status_code == 200, response.text
        client = LogpondClient(server.base_url, credentials.key, credentials.project_id)
        try:
            assert client.wait_until_stable({}) == len(EXPECTED_ROWS)
        finally:
            client.close()
        yield World(server, credentials.key)
    finally:
        server.stop()


def parse_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result.stdout


# --- remote: a real server over HTTP ----------------------------------------------------------------------


def test_remote_csv_prints_header_and_rows(world: World) -> None:
    """``--format csv`` prints the column names, then every row, quoting commas and quotes properly."""
    out = ok(world.remote(ROWS_QUERY, "--format", "csv", "--project", "1"))
    assert parse_csv(out) == [["n", "service_name", "level", "message"], *EXPECTED_ROWS]


def test_remote_json_prints_one_object_per_row(world: World) -> None:
    """``--format json`` prints JSON Lines keyed by column, with numbers as numbers; the project defaults to
    the key's current project."""
    out = ok(world.remote(AGGREGATE_QUERY, "--format", "json"))
    assert json_lines(out) == EXPECTED_AGGREGATES


def test_remote_table_shows_columns_and_values_verbatim(world: World) -> None:
    """The default table has a header row, every value, a row count, and prints markup-like text as is."""
    out = ok(world.remote(ROWS_QUERY))
    lines = out.splitlines()
    header = next(line for line in lines if "service_name" in line)
    assert [word for word in ("n", "service_name", "level", "message") if word in header] == [
        "n", "service_name", "level", "message"]
    for row in EXPECTED_ROWS:
        assert any(all(value in line for value in row) for line in lines), (row, out)
    assert "5 rows" in out


def test_remote_truncation_is_reported_on_stderr(world: World) -> None:
    """A query without LIMIT gets the server's default limit; the CLI says there is more, off stdout."""
    result = world.remote("SELECT message FROM logs ORDER BY message", "--format", "csv", "--project", "1")
    assert parse_csv(ok(result)) == [["message"], ["GET /health ok"], ["[red]not markup[/red]"]]
    assert "more rows exist than the 2 shown" in result.stderr


def test_remote_errors_exit_1_with_the_servers_detail(world: World) -> None:
    """A syntax error shows its line and column; OFFSET with a personal key, a wrong project and a wrong key
    each print the API's detail to stderr and exit 1, with nothing on stdout."""
    syntax = world.remote(BAD_QUERY)
    assert syntax.returncode == 1
    assert syntax.stdout == ""
    assert syntax.stderr.startswith("error: ") and "(line 3, column" in syntax.stderr, syntax.stderr

    offset = world.remote("SELECT message FROM logs LIMIT 1 OFFSET 1")
    assert offset.returncode == 1
    assert "OFFSET is not supported" in offset.stderr

    other_project = world.remote("SELECT 1", "--project", "999")
    assert other_project.returncode == 1
    assert "error: Project not found." in other_project.stderr

    server = world.running()
    wrong_key = server.cli("query", "SELECT 1", "--host", server.base_url, check=False, pass_data_dir=False,
                           env={"LOGPOND_API_KEY": "phx_" + "x" * 40})
    assert wrong_key.returncode == 1
    assert "is invalid" in wrong_key.stderr


def test_remote_needs_a_key_and_no_data_dir(world: World) -> None:
    """--host without any key, and --host with --data-dir, are usage errors (exit 2), not guesses."""
    server = world.running()
    no_key = server.cli("query", "SELECT 1", "--host", server.base_url, check=False, pass_data_dir=False)
    assert no_key.returncode == 2
    assert "--api-key" in no_key.stderr
    both = server.cli("query", "SELECT 1", "--host", server.base_url, "--api-key", world.key, check=False)
    assert both.returncode == 2
    assert "--data-dir" in both.stderr


def test_local_while_the_server_runs_says_what_to_do(world: World) -> None:
    """The store is locked by the running server: the CLI exits 1 and points at --host instead of a traceback."""
    result = world.running().cli("query", "SELECT 1", check=False)
    assert result.returncode == 1
    assert "--host" in result.stderr
    assert "Traceback" not in result.stderr


# --- local: the data dir's store, server stopped ----------------------------------------------------------


def test_local_prints_the_same_rows_as_the_server(world: World) -> None:
    """The local store answers like the server: the same rows in csv, json and table."""
    assert parse_csv(ok(world.local(ROWS_QUERY, "--format", "csv"))) == [
        ["n", "service_name", "level", "message"], *EXPECTED_ROWS]
    assert json_lines(ok(world.local(AGGREGATE_QUERY, "--format", "json", "--project", "1"))) == EXPECTED_AGGREGATES
    table = ok(world.local(AGGREGATE_QUERY))
    assert any("api" in line and "3" in line for line in table.splitlines()), table
    assert "2 rows" in table


def test_local_allows_offset_and_reports_truncation(world: World) -> None:
    """Without a personal key OFFSET is allowed; the default limit still applies and is reported."""
    out = ok(world.local("SELECT attributes.n AS n FROM logs ORDER BY n LIMIT 2 OFFSET 3", "--format", "csv"))
    assert parse_csv(out) == [["n"], ["4"], ["5"]]
    truncated = world.local("SELECT message FROM logs ORDER BY message", "--format", "json")
    assert json_lines(ok(truncated)) == [{"message": "GET /health ok"}, {"message": "[red]not markup[/red]"}]
    assert "more rows exist than the 2 shown" in truncated.stderr


def test_local_errors_exit_non_zero(world: World) -> None:
    """A syntax error exits 1 with line and column; an unknown field exits 1; a missing project exits 2."""
    syntax = world.local(BAD_QUERY, "--format", "csv")
    assert syntax.returncode == 1
    assert syntax.stdout == ""
    assert "(line 3, column" in syntax.stderr, syntax.stderr

    unknown = world.local("SELECT no_such_field FROM logs")
    assert unknown.returncode == 1
    assert "no_such_field" in unknown.stderr

    missing = world.local("SELECT 1", "--project", "42")
    assert missing.returncode == 2
    assert "project 42 not found" in missing.stderr
