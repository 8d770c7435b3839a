"""A server killed with SIGKILL leaves no process behind: its decode worker notices and exits."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from tests.e2e._otlp import export_request
from tests.e2e._server import Credentials, ServerProcess


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its closing parenthesis
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in (Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3])


def test_decode_worker_exits_after_the_server_is_killed(server: ServerProcess, credentials: Credentials) -> None:
    """The worker process that decodes OTLP requests is gone within seconds of a kill -9 of its server."""
    body = export_request([(time.time_ns(), "wake the decode worker", {})])
    response = httpx.post(
        f"{server.base_url}/i/v1/logs",
        content=body,
        headers={"Authorization": f"Bearer {credentials.token}", "Content-Type": "application/x-protobuf"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert server.pid is not None
    children = _children(server.pid)
    assert children, "the server should have started its decode worker"
    server.kill_9()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.2)
    assert not [pid for pid in children if _alive(pid)], "processes of the killed server are still running"
