"""Build OTLP/HTTP logs requests (protobuf ``ExportLogsServiceRequest``) for the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

Record = tuple[int, str, Mapping[str, str]]  # (time_unix_nano, body, attributes)


def export_request(records: Iterable[Record], *, service: str = "e2e", severity_number: int = 9) -> bytes:
    """One resource (``service.name`` = ``service``), one scope, the given records; serialized."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    service_name = KeyValue(key="service.name", value=AnyValue(string_value=service))
    resource_logs.resource.attributes.append(service_name)
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "logpond.e2e"
    scope_logs.scope.version = "1"
    append = scope_logs.log_records.append
    for time_unix_nano, body, attributes in records:
        append(LogRecord(
            time_unix_nano=time_unix_nano,
            severity_number=severity_number,  # type: ignore[arg-type]
            body=AnyValue(string_value=body),
            attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items()],
        ))
    return request.SerializeToString()  # type: ignore[no-any-return]
