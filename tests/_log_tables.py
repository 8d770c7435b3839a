"""Build Arrow batches of log rows (``LOG_ARROW_SCHEMA``) from plain Python data, for tests that need logs at
exact timestamps or outside OTLP's ±24 h window, or that insert straight into a store.

``log_row(ts, body="x", severity="error", service="api", attributes={"k": "v"})`` is one row;
``log_table(rows, team_id=1)`` the batch to hand to ``store.insert_logs``. ``log_bytes(row)`` is what the
row weighs for sparklines ranked by bytes: the UTF-8 bytes of the body and of every attribute key and value.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from logpond.store.schema import LOG_ARROW_SCHEMA

SEVERITY_NUMBERS = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "error": 17, "fatal": 21}


def log_row(
    timestamp: dt.datetime,
    *,
    body: str = "",
    severity: str = "info",
    service: str = "",
    attributes: Mapping[str, str] | None = None,
    resource: Mapping[str, str] | None = None,
    trace_id: bytes = b"",
    span_id: bytes = b"",
    observed: dt.datetime | None = None,
) -> dict[str, Any]:
    """One row as the store receives it; ``resource`` gets ``service.name`` when a service is given."""
    resource_attributes = dict(resource or {})
    if service and "service.name" not in resource_attributes:
        resource_attributes["service.name"] = service
    return {
        "uuid": str(uuid.uuid4()),
        "trace_id": trace_id,
        "span_id": span_id,
        "trace_flags": 0,
        "timestamp": timestamp,
        # the expiry (observed + retention) must lie ahead, or the rows could be dropped by TTL
        "observed_timestamp": observed or dt.datetime.now(dt.UTC),
        "body": body,
        "severity_text": severity,
        "severity_number": SEVERITY_NUMBERS.get(severity, 0),
        "service_name": service,
        "resource_attributes": list(resource_attributes.items()),
        "instrumentation_scope": "",
        "event_name": "",
        "attributes": list((attributes or {}).items()),
    }


def log_table(rows: Iterable[Mapping[str, Any]], *, team_id: int) -> pa.Table:
    """The batch of ``rows`` for project ``team_id``."""
    listed = [{"team_id": team_id, **row} for row in rows]
    return pa.Table.from_pylist(listed, schema=LOG_ARROW_SCHEMA)


def log_bytes(row: Mapping[str, Any]) -> int:
    """Bytes of the body plus every log attribute key and value (resource attributes do not count)."""
    size = len(row["body"].encode())
    return size + sum(len(k.encode()) + len(v.encode()) for k, v in row["attributes"])
