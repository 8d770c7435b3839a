"""The ``logpond`` command as an operator uses it: first start, keys, projects, ``LOGPOND_DATA_DIR``."""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path

import httpx

from tests.e2e._otlp import export_request
from tests.e2e._server import HOST, LogpondClient, ServerProcess
from tests.e2e.conftest import StartServer

BOOTSTRAP_LINE = "logpond: created a new installation"


def http(server: ServerProcess, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.base_url, timeout=30, trust_env=False, headers=headers)


def send_one(server: ServerProcess, token: str, body: str) -> None:
    with http(server) as client:
        response = client.post("/i/v1/logs", content=export_request([(time.time_ns(), body, {})]),
                               headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text


def test_first_start_prints_the_bootstrap_block_once(server: ServerProcess) -> None:
    """An empty data dir gets an installation, announced once with the admin password; a restart is quiet."""
    first = server.output()
    assert first.count(BOOTSTRAP_LINE) == 1, first
    admin = re.search(r"admin user\s+(\S+), password (\S+)", first)
    assert admin, first
    password = admin.group(2)
    assert len(password) >= 16
    token = re.search(r"token (phc_\S+)", first)
    assert token, first
    assert server.cli_json("projects", "list")[0]["api_token"] == token.group(1)
    assert f"listening on http://{HOST}:{server.port}" in first

    # the block tells how to get an API key: that exact command works
    hint = re.search(r"API key\s+(logpond keys create .*)", first)
    assert hint, first
    command = shlex.split(hint.group(1))
    assert str(server.data_dir) in command
    result = server.cli(*command[1:], pass_data_dir=False)
    assert result.stdout.strip().startswith('{"key": "phx_')

    server.restart()
    second = server.output()
    assert BOOTSTRAP_LINE not in second
    assert "password" not in second
    assert password not in second
    assert server.output(current_run_only=False).count(BOOTSTRAP_LINE) == 1


def test_keys_create_prints_a_working_key(server: ServerProcess) -> None:
    """``keys create --json`` prints the key and its scopes; the running server accepts it at once."""
    created = server.cli_json("keys", "create", "--scopes", "*")
    assert created["key"].startswith("phx_")
    assert created["scopes"] == ["*"]
    with http(server, created["key"]) as client:
        projects = client.get("/api/projects/")
        assert projects.status_code == 200, projects.text
        assert [p["id"] for p in projects.json()["results"]] == [1]
        assert client.get("/api/users/@me").json()["email"]

    limited = server.cli_json("keys", "create", "--scopes", "logs:read")
    assert limited["scopes"] == ["logs:read"]
    with http(server, limited["key"]) as client:
        query = client.post("/api/projects/1/logs/query/", json={"query": {}})
        assert query.status_code == 200, query.text
        assert client.get("/api/projects/").status_code == 403

    with http(server, "phx_" + "x" * 40) as client:
        assert client.get("/api/projects/").status_code == 401
    project_token = server.cli_json("projects", "list")[0]["api_token"]
    with http(server, project_token) as client:
        assert client.post("/api/projects/1/logs/query/", json={"query": {}}).status_code == 401

    bad = server.cli("keys", "create", "--scopes", "logs:fly", "--json", check=False)
    assert bad.returncode != 0
    assert "phx_" not in bad.stdout


def test_projects_create_and_list(server: ServerProcess) -> None:
    """A project created by the CLI is listed, takes logs with its own token and keeps them to itself."""
    created = server.cli_json("projects", "create", "Payments")
    assert created["name"] == "Payments"
    assert created["api_token"].startswith("phc_")
    listed = server.cli_json("projects", "list")
    assert [(p["id"], p["name"]) for p in listed] == [(1, "Default project"), (created["id"], "Payments")]
    assert all(set(p) >= {"id", "name", "api_token"} for p in listed)
    assert listed[1]["api_token"] == created["api_token"]
    assert listed[0]["api_token"] != created["api_token"]

    key = server.cli_json("keys", "create", "--scopes", "*")["key"]
    send_one(server, created["api_token"], "payment captured")
    client = LogpondClient(server.base_url, key, created["id"])
    try:
        assert client.wait_for_count({}, 1) == 1
        assert [r["body"] for r in client.query({})["results"]] == ["payment captured"]
        assert client.count({}, project_id=1) == 0
    finally:
        client.close()


def test_data_dir_comes_from_logpond_data_dir(start_server: StartServer, tmp_path: Path) -> None:
    """With ``LOGPOND_DATA_DIR`` set and no ``--data-dir``, serve and the admin commands use that dir."""
    data_dir = tmp_path / "from-env"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    server = start_server(data_dir=data_dir, pass_data_dir=False, cwd=cwd,
                          env={"LOGPOND_DATA_DIR": str(data_dir)})
    assert f"(data in {data_dir})" in server.output()
    assert (data_dir / "meta.sqlite3").is_file()
    assert (data_dir / "wal").is_dir()

    via_env = server.cli_json("projects", "list")
    via_flag = server.cli_json("projects", "list", pass_data_dir=True)
    assert via_env == via_flag
    token = re.search(r"token (phc_\S+)", server.output())
    assert token
    assert via_env[0]["api_token"] == token.group(1)

    # a key made through the env var works against the server that found its data through it
    key = server.cli_json("keys", "create", "--scopes", "*")["key"]
    send_one(server, via_env[0]["api_token"], "hello from env")
    client = LogpondClient(server.base_url, key, 1)
    try:
        assert client.wait_for_count({}, 1) == 1
    finally:
        client.close()
    # the default ./.logpond was never touched
    assert not (cwd / ".logpond").exists()
