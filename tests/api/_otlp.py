"""Build OTLP/HTTP log export requests from plain Python data, for the API tests.

``make_request(records=[dict(body="boom", severity_number=17, attributes={"http.status": 500})],
resource={"service.name": "api"}, scope=("app", "1.0"))`` returns an ``ExportLogsServiceRequest``;
``encode(...)`` the same as protobuf bytes. Values become the matching ``AnyValue`` kind (str, bool, int,
float, bytes, list, dict), so tests control exactly what the server receives.
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from tests.ingest._requests import any_value
from tests.ingest._requests import log_record as build_log_record

Resource = Mapping[str, Any]
Scope = tuple[str, str] | None


def key_value(key: str, value: Any) -> KeyValue:
    return KeyValue(key=key, value=any_value(value))


def ns(moment: dt.datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime, exact to the microsecond."""
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def log_record(
    *,
    body: Any = "",
    severity_text: str = "",
    severity_number: int = 0,
    attributes: Mapping[str, Any] | None = None,
    time_unix_nano: int | dt.datetime = 0,
    observed_time_unix_nano: int = 0,
    trace_id: bytes = b"",
    span_id: bytes = b"",
    event_name: str = "",
    flags: int = 0,
) -> LogRecord:
    if isinstance(time_unix_nano, dt.datetime):
        time_unix_nano = ns(time_unix_nano)
    return build_log_record(
        body,
        attributes=attributes or {},
        time_unix_nano=time_unix_nano,
        observed_time_unix_nano=observed_time_unix_nano,
        severity_number=severity_number,
        severity_text=severity_text,
        trace_id=trace_id,
        span_id=span_id,
        flags=flags,
        event_name=event_name,
    )


def add_resource_logs(
    request: ExportLogsServiceRequest,
    records: Iterable[Mapping[str, Any]],
    resource: Resource | None = None,
    scope: Scope = ("test", "1.0"),
) -> ExportLogsServiceRequest:
    """Append one ResourceLogs (one resource, one scope) holding ``records`` to ``request``."""
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(key_value(k, v) for k, v in (resource or {}).items())
    scope_logs = resource_logs.scope_logs.add()
    if scope is not None:
        scope_logs.scope.name, scope_logs.scope.version = scope
    scope_logs.log_records.extend(log_record(**r) for r in records)
    return request


def make_request(
    records: Iterable[Mapping[str, Any]],
    resource: Resource | None = None,
    scope: Scope = ("test", "1.0"),
) -> ExportLogsServiceRequest:
    return add_resource_logs(ExportLogsServiceRequest(), records, resource, scope)


def encode(
    records: Iterable[Mapping[str, Any]],
    resource: Resource | None = None,
    scope: Scope = ("test", "1.0"),
) -> bytes:
    """Protobuf bytes of ``make_request(records, resource, scope)``."""
    return make_request(records, resource, scope).SerializeToString()


def encode_gzip(
    records: Iterable[Mapping[str, Any]],
    resource: Resource | None = None,
    scope: Scope = ("test", "1.0"),
) -> bytes:
    return gzip.compress(encode(records, resource, scope))


def json_request(records: Iterable[Mapping[str, Any]], resource: Resource | None = None) -> dict[str, Any]:
    """The OTLP/JSON document for records with string bodies and string attribute values."""

    def kv(items: Mapping[str, str]) -> list[dict[str, Any]]:
        return [{"key": k, "value": {"stringValue": v}} for k, v in items.items()]

    log_records = []
    for r in records:
        doc: dict[str, Any] = {"body": {"stringValue": r["body"]}, "attributes": kv(r.get("attributes", {}))}
        for src, dst in (("severity_text", "severityText"), ("severity_number", "severityNumber")):
            if src in r:
                doc[dst] = r[src]
        if "time_unix_nano" in r:
            doc["timeUnixNano"] = str(r["time_unix_nano"])
        log_records.append(doc)
    return {
        "resourceLogs": [{
            "resource": {"attributes": kv(dict(resource or {}))},
            "scopeLogs": [{"scope": {"name": "json", "version": "2"}, "logRecords": log_records}],
        }]
    }
