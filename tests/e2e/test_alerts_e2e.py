"""Log alerts end to end: a real ``logpond serve`` whose scheduler ticks every second, logs sent over OTLP, a
webhook receiver on 127.0.0.1, and ``logpond alerts list|simulate`` against the same data dir.

The server runs with ``LOGPOND_ALERTS_TICK_SECONDS=1`` and loopback destinations allowed; the alert is new,
so its first check counts the last fifteen minutes at once and fires.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from logpond.alerts.destinations import verify_signature
from tests.alerts._receiver import Receiver
from tests.e2e._otlp import export_request
from tests.e2e._server import LogpondClient, ServerProcess

SEVERITY_ERROR = 17
ERRORS = 12
# before the latest 5-minute check instant, so simulate's last check counts them, and inside the 15-minute
# windows the alerts below use
SIX_MINUTES_NS = 6 * 60 * 1_000_000_000


class World:
    def __init__(self, server: ServerProcess, key: str, receiver: Receiver) -> None:
        self.server = server
        self.key = key
        self.receiver = receiver
        self.http = httpx.Client(
            base_url=server.base_url, timeout=30, trust_env=False, headers={"Authorization": f"Bearer {key}"}
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root: Path = tmp_path_factory.mktemp("alerts-e2e")
    env = {"LOGPOND_ALERTS_TICK_SECONDS": "1", "LOGPOND_ALERTS_ALLOW_HTTP_LOOPBACK": "true"}
    server = ServerProcess(root / "data", root / "server.log", env=env)
    with Receiver() as receiver:
        server.start()
        try:
            credentials = server.credentials()
            now = time.time_ns()
            body = export_request(
                [(now - SIX_MINUTES_NS + i, f"payment failed {i}", {"attempt": str(i)}) for i in range(ERRORS)],
                service="payments",
                severity_number=SEVERITY_ERROR,
            )
            response = httpx.post(
                f"{server.base_url}/i/v1/logs",
                content=body,
                headers={"Authorization": f"Bearer {credentials.token}", "Content-Type": "application/x-protobuf"},
                timeout=30,
                trust_env=False,
            )
            assert response.status_code == 200, response.text
            client = LogpondClient(server.base_url, credentials.key, credentials.project_id)
            try:
                assert client.wait_until_stable({"serviceNames": ["payments"]}) == ERRORS
            finally:
                client.close()
            w = World(server, credentials.key, receiver)
            yield w
            w.http.close()
        finally:
            server.stop()


def create_alert(world: World, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "payments errors",
        "filters": {"serviceNames": ["payments"], "severityLevels": ["error"]},
        "window_minutes": 15,
    }
    response = world.http.post("/api/projects/1/logs/alerts/", json={**body, **fields})
    assert response.status_code == 201, response.text
    doc: dict[str, Any] = response.json()
    return doc


def wait_for_state(world: World, alert_id: str, state: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc: dict[str, Any] = world.http.get(f"/api/projects/1/logs/alerts/{alert_id}/").json()
        if doc["state"] == state or time.monotonic() > deadline:
            assert doc["state"] == state
            return doc
        time.sleep(0.1)


def test_a_breaching_alert_fires_a_signed_webhook_from_the_running_server(world: World) -> None:
    """The server's own scheduler checks a new alert within a tick, moves it to firing, and POSTs a signed
    ``logs_alert.firing`` webhook with the count; the history records the check, and the project's events
    hold PostHog's internal ``$logs_alert_firing`` event."""
    alert = create_alert(world, threshold_count=ERRORS - 2, enabled=False)
    destination = world.http.post(
        f"/api/projects/1/logs/alerts/{alert['id']}/destinations/",
        json={"type": "webhook", "webhook_url": f"{world.receiver.url}/hook"},
    )
    assert destination.status_code == 201, destination.text
    secret = destination.json()["signing_secret"]
    enabled = world.http.patch(f"/api/projects/1/logs/alerts/{alert['id']}/", json={"enabled": True})
    assert enabled.status_code == 200, enabled.text
    [request] = world.receiver.wait_for(1, timeout=20)
    assert request.json["type"] == "logs_alert.firing"
    assert request.json["data"]["alert_id"] == alert["id"]
    assert request.json["data"]["result_count"] == ERRORS
    assert verify_signature(secret, request.headers["x-logpond-signature"], request.body)
    # the result is written just after the delivery succeeded
    doc = wait_for_state(world, alert["id"], "firing")
    assert doc["destination_types"] == ["webhook"]
    assert doc["next_check_at"] is not None
    events = world.http.get(f"/api/projects/1/logs/alerts/{alert['id']}/events/", params={"kind": "check"}).json()
    assert [(e["state_before"], e["state_after"], e["result_count"]) for e in events["results"]] == [
        ("not_firing", "firing", ERRORS)
    ]
    health = world.http.get("/_health").json()
    assert health["alert_scheduler_error"] is None
    # PostHog's internal event of the notification, in the project's events, with the webhook's id
    hogql = (
        "SELECT uuid, properties.alert_id, properties.result_count, properties.threshold_operator "
        "FROM events WHERE event = '$logs_alert_firing'"
    )
    deadline = time.monotonic() + 10
    while True:
        rows = world.http.post("/api/projects/1/query/", json={"query": {"kind": "HogQLQuery", "query": hogql}})
        assert rows.status_code == 200, rows.text
        if rows.json()["results"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert rows.json()["results"] == [[request.json["id"], alert["id"], str(ERRORS), "above"]]


def test_cli_lists_alerts_while_the_server_runs(world: World) -> None:
    """``logpond alerts list --json`` reads the metadata beside the running server and shows every alert."""
    create_alert(world, name="listed", threshold_count=10_000)
    rows = world.server.cli_json("alerts", "list")
    listed = [row for row in rows if row["name"] == "listed"]
    assert len(listed) == 1
    assert listed[0]["project"] == 1
    assert listed[0]["filters"] == {"serviceNames": ["payments"], "severityLevels": ["error"]}


def test_cli_simulates_through_the_server(world: World) -> None:
    """``logpond alerts simulate --host`` replays a rule through the server's simulate endpoint."""
    result = world.server.cli(
        "alerts", "simulate", "--service", "payments", "--severity", "error", "--threshold", "5",
        "--window", "15", "--date-from", "-1h", "--json", "--host", world.server.base_url, "--api-key", world.key,
        "--project", "1", check=False, pass_data_dir=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["fire_count"] == 1
    assert sum(bucket["count"] > 5 for bucket in doc["buckets"]) >= 1


def test_cli_refuses_a_bad_rule_naming_the_field(world: World) -> None:
    """A window the API refuses is an exit 1 with the field and the API's sentence."""
    result = world.server.cli(
        "alerts", "simulate", "--service", "payments", "--window", "7", "--host", world.server.base_url,
        "--api-key", world.key, check=False, pass_data_dir=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "window_minutes" in result.stderr


def test_cli_simulates_an_alert_locally_with_the_server_stopped(world: World) -> None:
    """With the server stopped, ``logpond alerts simulate <id>`` opens the store itself, replays that alert's
    rule (with an override) and prints the checks that notify and a summary."""
    alert = create_alert(world, name="local", threshold_count=10_000)
    if world.server.running:
        assert world.server.terminate() in (0, -signal.SIGTERM)
    try:
        result = world.server.cli("alerts", "simulate", alert["id"], "--threshold", "3", "--date-from", "-2h",
                                  check=False)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "fired" in result.stdout
        assert "1 fired" in result.stdout
        missing = world.server.cli("alerts", "simulate", "00000000-0000-0000-0000-000000000000", check=False)
        assert missing.returncode == 2
        assert "not found" in missing.stderr
    finally:
        world.server.start()
