"""Small helpers shared by the API tests."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx

from tests._log_tables import log_table
from tests.conftest import Env

ISO_MICROS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|\+00:00)$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def iso_z(moment: dt.datetime) -> str:
    """``2026-01-01T10:00:00.123456Z``."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> dt.datetime:
    assert ISO_MICROS.match(text), f"not ISO 8601 UTC with microseconds: {text!r}"
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_error(
    response: httpx.Response,
    status: int,
    *,
    type: str,
    code: str,
    attr: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """The response is PostHog's error envelope with exactly these values (``detail`` when given)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"type", "code", "detail", "attr"}, body
    assert (body["type"], body["code"], body["attr"]) == (type, code, attr), body
    assert isinstance(body["detail"], str) and body["detail"]
    if detail is not None:
        assert body["detail"] == detail
    return body  # type: ignore[no-any-return]


def ids_of(response: httpx.Response) -> list[str]:
    """The ``id`` attribute of every returned row, in response order."""
    assert response.status_code == 200, response.text
    return [row["attributes"]["id"] for row in response.json()["results"]]


class World:
    """A module's app holding two projects: ``a`` (the app's own) and ``b``, whose look-alike logs must never
    show in ``a``'s answers."""

    def __init__(self, env: Env, other: Any) -> None:
        self.env = env
        self.a = env.project
        self.b = other


def store_world(
    env: Env, now: dt.datetime, batches: list[list[dict[str, Any]]], intruder: list[dict[str, Any]]
) -> World:
    """Freeze the app's clock at ``now`` and store ``batches`` for project ``a`` and ``intruder`` for a new ``b``."""
    env.services.clock = lambda: now
    other = env.services.meta.create_project("Other")
    store = env.services.store
    for rows in batches:
        store.insert_logs(log_table(rows, team_id=env.project.id))
    store.insert_logs(log_table(intruder, team_id=other.id))
    return World(env, other)
