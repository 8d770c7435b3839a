"""Builders for OTLP log requests in tests, on top of the generated opentelemetry.proto classes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

NOW_NS = 1_750_000_000_123_456_789  # 2025-06-15T15:06:40.123456789Z
HOUR_NS = 3600 * 1_000_000_000


def any_value(value: Any) -> AnyValue:
    """An AnyValue from a plain Python value: str, bool, int, float, bytes, list, dict or None (empty)."""
    result = AnyValue()
    fill_any_value(result, value)
    return result


def fill_any_value(target: AnyValue, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, list):
        target.array_value.SetInParent()
        for item in value:
            fill_any_value(target.array_value.values.add(), item)
    elif isinstance(value, dict):
        target.kvlist_value.SetInParent()
        for key, item in value.items():
            fill_any_value(target.kvlist_value.values.add(key=key).value, item)
    else:
        raise TypeError(f"no AnyValue for {value!r}")


def key_values(attributes: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> list[KeyValue]:
    items = attributes.items() if isinstance(attributes, Mapping) else attributes
    return [KeyValue(key=key, value=any_value(value)) for key, value in items]


def log_record(
    body: Any = "hello",
    *,
    attributes: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
    time_unix_nano: int = NOW_NS - 1_000,
    observed_time_unix_nano: int = 0,
    severity_number: int = 0,
    severity_text: str = "",
    trace_id: bytes = b"",
    span_id: bytes = b"",
    flags: int = 0,
    event_name: str = "",
) -> LogRecord:
    record = LogRecord(
        time_unix_nano=time_unix_nano,
        observed_time_unix_nano=observed_time_unix_nano,
        severity_number=severity_number,  # type: ignore[arg-type]
        severity_text=severity_text,
        trace_id=trace_id,
        span_id=span_id,
        flags=flags,
        event_name=event_name,
        attributes=key_values(attributes),
    )
    if body is not None:
        fill_any_value(record.body, body)
    return record


def export_request(
    *records: LogRecord,
    resource: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    scope_name: str = "",
    scope_version: str = "",
) -> ExportLogsServiceRequest:
    """A request with one ResourceLogs holding one ScopeLogs with ``records``."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    if resource is not None:
        resource_logs.resource.attributes.extend(key_values(resource))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = scope_name
    scope_logs.scope.version = scope_version
    scope_logs.log_records.extend(records)
    return request
