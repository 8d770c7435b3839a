"""OTLP/HTTP logs: decode a request body and turn it into Arrow log rows (logs spec §10, HTTP spec §5.2).

Three pure steps, in the order the HTTP handler calls them::

    data = decode_body(body, max_decompressed_bytes=limit)         # gzip by magic bytes, bounded
    request = parse_export_logs_request(data)                       # protobuf, else OTLP/JSON or JSON Lines
    table = to_log_table(request, team_id=team, now=received_at)    # one row per LogRecord, LOG_ARROW_SCHEMA

Decisions worth knowing:

- **Format detection ignores Content-Type**, as PostHog's capture does. A body whose first non-blank byte is
  ``{`` or ``[`` is tried as JSON first, anything else as protobuf first; the other format is the fallback.
  JSON first matters because JSON text can occasionally parse as protobuf made of unknown fields only.
  A non-empty body that parses as protobuf but yields no ``resource_logs`` consisted of unknown fields only
  and is not accepted as OTLP.
- **An empty body is a valid, empty protobuf request**: it decodes to zero rows (and the handler answers
  200), exactly like an OTLP exporter's empty export would.
- **OTLP/JSON** follows the OTLP JSON encoding: lowerCamelCase keys (the proto field names are accepted
  too), ids as hex, 64-bit integers as numbers or decimal strings, enums as integers (the
  ``SEVERITY_NUMBER_*`` names are accepted too), bytes as base64; unknown keys are ignored as the OTLP spec
  requires, but a known key holding the wrong type is a 400 naming the field, e.g.
  ``resourceLogs[0].scopeLogs[0].logRecords[3].timeUnixNano: expected an unsigned integer, got 'soon'``.
  Trace and span ids that are not hex are accepted as base64 (what protobuf's own JSON printer emits).
  Several JSON objects, one per line (JSON Lines), are merged into one request.
- **Non-string values** (attributes, resource attributes, bodies) become compact JSON text: ints ``"42"``,
  bools ``"true"``, doubles ``"1.5"`` (non-finite doubles as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``;
  inside arrays and kvlists they become ``null``, as JSON has no spelling for them), bytes as a base64
  string, arrays as lists, kvlists as objects (a repeated key: the last one wins). An empty AnyValue is
  ``""``.
- **Repeated attribute keys** are kept as sent: the OTLP spec forbids them and SDKs never send them, and
  de-duplicating every record would cost a dict per record on the hot path. The one key we add ourselves,
  ``$originalTimestamp``, replaces a sender's key of the same name.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
import pyarrow as pa
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from logpond.ingest.errors import DecodeError, PayloadTooLarge
from logpond.ingest.severity import TEXT_BY_NUMBER, resolve_severity
from logpond.ingest.uuid7 import uuid7_batch
from logpond.store.schema import LOG_ARROW_SCHEMA, STR_MAP, TS_US

__all__ = [
    "ORIGINAL_TIMESTAMP_ATTRIBUTE",
    "decode_body",
    "parse_export_logs_request",
    "to_log_table",
]

ORIGINAL_TIMESTAMP_ATTRIBUTE: Final[str] = "$originalTimestamp"

# ---------------------------------------------------------------------------------------------------------
# 1. Body: gzip, bounded
# ---------------------------------------------------------------------------------------------------------

_GZIP_MAGIC: Final[bytes] = b"\x1f\x8b"
# Compressed input is fed in slices so zlib's unconsumed tail (which it copies on every call) stays small
# even for a large body; output is taken in slices so the size check runs before anything big exists.
_GZIP_INPUT_SLICE: Final[int] = 64 * 1024
_GZIP_OUTPUT_SLICE: Final[int] = 1024 * 1024


def decode_body(body: bytes, *, max_decompressed_bytes: int) -> bytes:
    """Return the request body, gunzipped when it starts with the gzip magic bytes.

    Raises PayloadTooLarge as soon as the (decompressed) body would exceed ``max_decompressed_bytes``:
    decompression is incremental, so a gzip bomb never allocates much more than the limit. Raises
    DecodeError for a corrupt or truncated gzip stream. Concatenated gzip members are decompressed in
    sequence (RFC 1952); zero padding after the last member is ignored, any other trailing bytes are not.
    """
    if body[:2] != _GZIP_MAGIC:
        if len(body) > max_decompressed_bytes:
            raise PayloadTooLarge(_too_large(max_decompressed_bytes))
        return body
    return _gunzip_bounded(body, max_decompressed_bytes)


def _too_large(limit: int) -> str:
    return f"Request body is larger than {limit} bytes after decompression"


def _gunzip_bounded(data: bytes, limit: int) -> bytes:
    view = memoryview(data)
    size = len(view)
    chunks: list[bytes] = []
    total = 0
    member_start = 0
    while True:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip header and trailer required
        pos = member_start
        pending: bytes | memoryview = b""
        while not decompressor.eof:
            if not pending and pos < size:
                pending = view[pos : pos + _GZIP_INPUT_SLICE]
                pos += len(pending)
            try:
                # limit - total + 1: one byte past the limit is enough to know it is exceeded
                out = decompressor.decompress(pending, min(_GZIP_OUTPUT_SLICE, limit - total + 1))
            except zlib.error as exc:
                raise DecodeError(f"Invalid gzip body: {exc}") from None
            pending = decompressor.unconsumed_tail
            if out:
                total += len(out)
                if total > limit:
                    raise PayloadTooLarge(_too_large(limit))
                chunks.append(out)
            elif not pending and pos >= size and not decompressor.eof:
                # no output, no input left, stream not finished: the sender cut the body short
                raise DecodeError("Invalid gzip body: truncated stream")
        member_start = pos - len(decompressor.unused_data) - len(decompressor.unconsumed_tail)
        rest = view[member_start:]
        if not rest or not rest.tobytes().strip(b"\x00"):
            break
        if rest[:2] != _GZIP_MAGIC:
            raise DecodeError("Invalid gzip body: unexpected bytes after the gzip stream")
    return b"".join(chunks)


# ---------------------------------------------------------------------------------------------------------
# 2. Request: protobuf, else OTLP/JSON
# ---------------------------------------------------------------------------------------------------------

_LEADING_BLANKS: Final[re.Pattern[bytes]] = re.compile(rb"[ \t\r\n]*")


def parse_export_logs_request(data: bytes) -> ExportLogsServiceRequest:
    """Parse an OTLP ``ExportLogsServiceRequest`` from protobuf, OTLP/JSON or OTLP/JSON Lines.

    Raises DecodeError("Failed to decode JSON: <reason> or Protobuf: <reason>") when neither works.
    """
    blanks = _LEADING_BLANKS.match(data)
    offset = blanks.end() if blanks else 0
    first = data[offset : offset + 1]
    if first in (b"{", b"["):
        try:
            return _parse_json(data)
        except _JsonError as exc:
            json_reason = str(exc)
        result = _parse_protobuf(data)
        if isinstance(result, str):
            raise DecodeError(f"Failed to decode JSON: {json_reason} or Protobuf: {result}")
        return result
    result = _parse_protobuf(data)
    if not isinstance(result, str):
        return result
    try:
        return _parse_json(data)
    except _JsonError as exc:
        raise DecodeError(f"Failed to decode JSON: {exc} or Protobuf: {result}") from None


def _parse_protobuf(data: bytes) -> ExportLogsServiceRequest | str:
    """Return the parsed request, or a short reason why ``data`` is not an OTLP protobuf request."""
    request = ExportLogsServiceRequest()
    try:
        request.ParseFromString(data)
    except ProtobufDecodeError as exc:
        # upb says "Error parsing message with type '<full name>': <what>"; the type name is noise here
        message = str(exc)
        _, sep, what = message.rpartition("': ")
        return (what if sep else message) or "invalid wire format"
    if data and not request.resource_logs:
        return "no OTLP fields in the message (only unknown fields)"
    return request


class _JsonError(Exception):
    """Why a body is not OTLP/JSON; ``path`` grows from the failing field outwards while unwinding."""

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path

    def within(self, segment: str) -> _JsonError:
        if not self.path:
            self.path = segment
        elif self.path.startswith("["):
            self.path = segment + self.path
        else:
            self.path = f"{segment}.{self.path}"
        return self

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


def _parse_json(data: bytes) -> ExportLogsServiceRequest:
    try:
        documents = [(1, orjson.loads(data))]
    except orjson.JSONDecodeError as exc:
        # orjson reports a second top-level value as "unexpected content after document": JSON Lines
        if "after document" not in str(exc):
            raise _JsonError(str(exc)) from None
        documents = _parse_json_lines(data)
    request = ExportLogsServiceRequest()
    multi = len(documents) > 1
    for number, document in documents:
        try:
            _json_request_into(request, document)
        except _JsonError as exc:
            if multi:
                raise exc.within(f"line {number}") from None
            raise
    return request


def _parse_json_lines(data: bytes) -> list[tuple[int, Any]]:
    documents: list[tuple[int, Any]] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            documents.append((number, orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            raise _JsonError(f"line {number}: {exc}") from None
    return documents


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    """Look a field up by its OTLP/JSON (lowerCamelCase) key, falling back to the proto field name."""
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return repr(text)
    return repr(value)


def _json_object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _JsonError(f"expected an object, got {_type_name(value)}", field)
    return value


def _json_array(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _JsonError(f"expected an array, got {_type_name(value)}", field)
    return value


def _json_string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _JsonError(f"expected a string, got {_type_name(value)}", field)
    return value


_DECIMAL: Final[re.Pattern[str]] = re.compile(r"-?[0-9]+")


def _json_integer(value: Any, field: str, low: int, high: int, kind: str) -> int:
    """A protobuf JSON integer: a JSON number without fraction, or a decimal string (for 64-bit fields)."""
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float):
        number = int(value) if value.is_integer() else None
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = int(value)
    if number is None or not low <= number <= high:
        raise _JsonError(f"expected {kind}, got {_type_name(value)}", field)
    return number


def _json_u64(value: Any, field: str) -> int:
    return _json_integer(value, field, 0, (1 << 64) - 1, "an unsigned 64-bit integer")


def _json_u32(value: Any, field: str) -> int:
    return _json_integer(value, field, 0, (1 << 32) - 1, "an unsigned 32-bit integer")


def _json_i64(value: Any, field: str) -> int:
    return _json_integer(value, field, -(1 << 63), (1 << 63) - 1, "a 64-bit integer")


_SPECIAL_DOUBLES: Final[dict[str, float]] = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _json_double(value: Any, field: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        special = _SPECIAL_DOUBLES.get(value)
        if special is not None:
            return special
        try:
            return float(value)
        except ValueError:
            pass
    raise _JsonError(f"expected a number, got {_type_name(value)}", field)


def _json_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise _JsonError(f"expected true or false, got {_type_name(value)}", field)
    return value


def _json_base64(value: Any, field: str) -> bytes:
    text = _json_string(value, field)
    # protobuf's JSON mapping accepts standard and URL-safe alphabets, with or without padding
    text = text.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _JsonError(f"expected base64, got {_type_name(value)}", field) from None


def _json_id(value: Any, field: str) -> bytes:
    text = _json_string(value, field)
    try:
        return bytes.fromhex(text)
    except ValueError:
        pass
    # protobuf's own JSON printer writes bytes fields as base64; accept that only when it decodes to a
    # real id's length, so a mistyped hex id is an error rather than a silently dropped id
    try:
        decoded = _json_base64(text, field)
    except _JsonError:
        decoded = b""
    if len(decoded) in (8, 16):
        return decoded
    raise _JsonError(f"expected a hex id, got {_type_name(value)}", field)


_SEVERITY_NAMES: Final[dict[str, int]] = {name: number for name, number in SeverityNumber.items()}


def _json_severity_number(value: Any, field: str) -> int:
    if isinstance(value, str):
        number = _SEVERITY_NAMES.get(value)
        if number is not None:
            return number
    # proto3 enums are open: any int32 is a valid value on the wire (to_log_table ignores those past 24)
    return _json_integer(value, field, -(1 << 31), (1 << 31) - 1, "a severity number")


def _json_request_into(request: ExportLogsServiceRequest, document: Any) -> None:
    if not isinstance(document, dict):
        raise _JsonError(f"expected a JSON object with resourceLogs, got {_type_name(document)}")
    resource_logs = _json_array(_get(document, "resourceLogs", "resource_logs"), "resourceLogs")
    for index, item in enumerate(resource_logs):
        try:
            _json_resource_logs_into(request.resource_logs.add(), _json_object(item, ""))
        except _JsonError as exc:
            raise exc.within(f"resourceLogs[{index}]") from None


def _json_resource_logs_into(target: ResourceLogs, obj: dict[str, Any]) -> None:
    resource = _get(obj, "resource", "resource")
    if resource is not None:
        _json_resource_into(target.resource, _json_object(resource, "resource"))
    schema_url = _get(obj, "schemaUrl", "schema_url")
    if schema_url is not None:
        target.schema_url = _json_string(schema_url, "schemaUrl")
    for index, item in enumerate(_json_array(_get(obj, "scopeLogs", "scope_logs"), "scopeLogs")):
        try:
            _json_scope_logs_into(target.scope_logs.add(), _json_object(item, ""))
        except _JsonError as exc:
            raise exc.within(f"scopeLogs[{index}]") from None


def _json_resource_into(target: Resource, obj: dict[str, Any]) -> None:
    _json_attributes_into(target.attributes, obj.get("attributes"), "attributes")
    dropped = _get(obj, "droppedAttributesCount", "dropped_attributes_count")
    if dropped is not None:
        target.dropped_attributes_count = _json_u32(dropped, "droppedAttributesCount")


def _json_scope_into(target: InstrumentationScope, obj: dict[str, Any]) -> None:
    name = obj.get("name")
    if name is not None:
        target.name = _json_string(name, "name")
    version = obj.get("version")
    if version is not None:
        target.version = _json_string(version, "version")
    _json_attributes_into(target.attributes, obj.get("attributes"), "attributes")
    dropped = _get(obj, "droppedAttributesCount", "dropped_attributes_count")
    if dropped is not None:
        target.dropped_attributes_count = _json_u32(dropped, "droppedAttributesCount")


def _json_scope_logs_into(target: ScopeLogs, obj: dict[str, Any]) -> None:
    scope = obj.get("scope")
    if scope is not None:
        try:
            _json_scope_into(target.scope, _json_object(scope, ""))
        except _JsonError as exc:
            raise exc.within("scope") from None
    schema_url = _get(obj, "schemaUrl", "schema_url")
    if schema_url is not None:
        target.schema_url = _json_string(schema_url, "schemaUrl")
    records = target.log_records
    for index, item in enumerate(_json_array(_get(obj, "logRecords", "log_records"), "logRecords")):
        try:
            _json_log_record_into(records.add(), _json_object(item, ""))
        except _JsonError as exc:
            raise exc.within(f"logRecords[{index}]") from None


# (OTLP/JSON key, proto field name, converter) for the scalar LogRecord fields
_LOG_RECORD_SCALARS: Final[tuple[tuple[str, str, Callable[[Any, str], Any]], ...]] = (
    ("timeUnixNano", "time_unix_nano", _json_u64),
    ("observedTimeUnixNano", "observed_time_unix_nano", _json_u64),
    ("severityNumber", "severity_number", _json_severity_number),
    ("severityText", "severity_text", _json_string),
    ("droppedAttributesCount", "dropped_attributes_count", _json_u32),
    ("flags", "flags", _json_u32),
    ("traceId", "trace_id", _json_id),
    ("spanId", "span_id", _json_id),
    ("eventName", "event_name", _json_string),
)


def _json_log_record_into(target: LogRecord, obj: dict[str, Any]) -> None:
    for camel, snake, convert in _LOG_RECORD_SCALARS:
        value = obj.get(camel)
        if value is None:
            value = obj.get(snake)
            if value is None:
                continue
        setattr(target, snake, convert(value, camel))
    body = obj.get("body")
    if body is not None:
        try:
            _json_any_value_into(target.body, body)
        except _JsonError as exc:
            raise exc.within("body") from None
    _json_attributes_into(target.attributes, obj.get("attributes"), "attributes")


def _json_attributes_into(target: Any, value: Any, field: str) -> None:
    """Fill a repeated KeyValue field from ``[{"key": .., "value": AnyValue}, ...]``."""
    for index, item in enumerate(_json_array(value, field)):
        try:
            pair = _json_object(item, "")
            key = pair.get("key")
            entry: KeyValue = target.add(key="" if key is None else _json_string(key, "key"))
            raw_value = pair.get("value")
            if raw_value is not None:
                try:
                    _json_any_value_into(entry.value, raw_value)
                except _JsonError as exc:
                    raise exc.within("value") from None
        except _JsonError as exc:
            raise exc.within(f"{field}[{index}]") from None


def _json_any_value_into(target: AnyValue, value: Any) -> None:
    obj = _json_object(value, "")
    # An AnyValue object carries one of these keys; an empty object is an empty AnyValue.
    for key, item in obj.items():
        if item is None:
            continue
        if key in ("stringValue", "string_value"):
            target.string_value = _json_string(item, key)
        elif key in ("intValue", "int_value"):
            target.int_value = _json_i64(item, key)
        elif key in ("doubleValue", "double_value"):
            target.double_value = _json_double(item, key)
        elif key in ("boolValue", "bool_value"):
            target.bool_value = _json_bool(item, key)
        elif key in ("bytesValue", "bytes_value"):
            target.bytes_value = _json_base64(item, key)
        elif key in ("arrayValue", "array_value"):
            values = target.array_value.values
            for index, element in enumerate(_json_array(_json_object(item, key).get("values"), "values")):
                try:
                    _json_any_value_into(values.add(), element)
                except _JsonError as exc:
                    raise exc.within(f"{key}.values[{index}]") from None
        elif key in ("kvlistValue", "kvlist_value"):
            target.kvlist_value.SetInParent()  # an empty kvlist is still a kvlist, not an empty AnyValue
            _json_attributes_into(
                target.kvlist_value.values, _json_object(item, key).get("values"), f"{key}.values"
            )


# ---------------------------------------------------------------------------------------------------------
# 3. Rows: ExportLogsServiceRequest -> pyarrow.Table with LOG_ARROW_SCHEMA
# ---------------------------------------------------------------------------------------------------------

_DAY_NS: Final[int] = 24 * 3600 * 1_000_000_000
_EPOCH: Final[datetime] = datetime(1970, 1, 1, tzinfo=UTC)
_ZERO_TRACE_ID: Final[bytes] = bytes(16)
_ZERO_SPAN_ID: Final[bytes] = bytes(8)
_INT32_MIN: Final[int] = -(1 << 31)
_INT32_MAX: Final[int] = (1 << 31) - 1


def to_log_table(request: ExportLogsServiceRequest, *, team_id: int, now: datetime | int) -> pa.Table:
    """Return one row per LogRecord in ``request``, with exactly ``LOG_ARROW_SCHEMA``.

    ``now`` is the server's receive time, a timezone-aware datetime or integer nanoseconds since the
    epoch; it becomes every row's ``observed_timestamp``, the UUIDv7 timestamp, and the fallback for
    missing or implausible (more than 24 h away) record timestamps.
    """
    if not _INT32_MIN <= team_id <= _INT32_MAX:
        raise ValueError(f"team_id out of Int32 range: {team_id}")
    now_ns = _to_unix_ns(now)
    earliest = now_ns - _DAY_NS
    latest = now_ns + _DAY_NS

    # Row columns, filled in one pass. Resource- and scope-level values are computed once per
    # ResourceLogs / ScopeLogs and expanded to rows at the end with Arrow's take().
    trace_ids: list[bytes] = []
    span_ids: list[bytes] = []
    trace_flags: list[int] = []
    timestamps_us: list[int] = []
    bodies: list[str] = []
    severity_texts: list[str] = []
    severity_numbers: list[int] = []
    event_names: list[str] = []
    attribute_keys: list[str] = []
    attribute_values: list[str] = []
    attribute_offsets: list[int] = [0]
    resource_rows: list[int] = []
    scope_rows: list[int] = []
    resource_keys: list[str] = []
    resource_values: list[str] = []
    resource_offsets: list[int] = [0]
    service_names: list[str] = []
    scope_names: list[str] = []

    # local bindings: attribute lookups on lists cost a dict probe per call in the hot loop
    trace_append = trace_ids.append
    span_append = span_ids.append
    flags_append = trace_flags.append
    ts_append = timestamps_us.append
    body_append = bodies.append
    sev_text_append = severity_texts.append
    sev_number_append = severity_numbers.append
    event_append = event_names.append
    key_append = attribute_keys.append
    value_append = attribute_values.append
    offset_append = attribute_offsets.append
    text_by_number = TEXT_BY_NUMBER
    any_text = _any_value_text
    zero_trace = _ZERO_TRACE_ID
    zero_span = _ZERO_SPAN_ID

    for resource_logs in request.resource_logs:
        resource_index = len(service_names)
        service_names.append(
            _resource_attributes_into(resource_logs.resource, resource_keys, resource_values)
        )
        resource_offsets.append(len(resource_keys))
        for scope_logs in resource_logs.scope_logs:
            records = scope_logs.log_records
            count = len(records)
            if not count:
                continue
            scope_index = len(scope_names)
            scope_names.append(_scope_text(scope_logs.scope))
            resource_rows.extend([resource_index] * count)
            scope_rows.extend([scope_index] * count)
            for record in records:
                timestamp = record.time_unix_nano or record.observed_time_unix_nano or now_ns
                original = 0
                if not earliest <= timestamp <= latest:
                    original = timestamp
                    timestamp = now_ns
                ts_append(timestamp // 1000)

                trace_id = record.trace_id
                trace_append(trace_id if len(trace_id) == 16 and trace_id != zero_trace else b"")
                span_id = record.span_id
                span_append(span_id if len(span_id) == 8 and span_id != zero_span else b"")
                flags_append(record.flags & 0xFF)
                event_append(record.event_name)

                body_value = record.body
                body = body_value.string_value
                # "" is ambiguous (empty string, another kind, or no body); only then ask which kind
                if not body and body_value.WhichOneof("value") != "string_value":
                    body = any_text(body_value)
                body_append(body)

                number = record.severity_number
                if 0 < number < 25 and not body.startswith("{"):
                    sev_text_append(text_by_number[number])
                    sev_number_append(number)
                else:
                    text, number = resolve_severity(record.severity_text, number, body)
                    sev_text_append(text)
                    sev_number_append(number)

                for pair in record.attributes:
                    value = pair.value
                    text = value.string_value
                    if not text and value.WhichOneof("value") != "string_value":
                        text = any_text(value)
                    key_append(pair.key)
                    value_append(text)
                if original:
                    _set_original_timestamp(attribute_keys, attribute_values, attribute_offsets[-1], original)
                offset_append(len(attribute_keys))

    rows = len(timestamps_us)
    now_us = now_ns // 1000
    resources = pa.MapArray.from_arrays(
        pa.array(resource_offsets, pa.int32()),
        pa.array(resource_keys, pa.string()),
        pa.array(resource_values, pa.string()),
        type=STR_MAP,
    )
    resource_take = pa.array(resource_rows, pa.int32())
    columns = [
        pa.repeat(pa.scalar(team_id, pa.int32()), rows),
        pa.array(uuid7_batch(rows, now_ns // 1_000_000), pa.string()),
        pa.array(trace_ids, pa.binary()),
        pa.array(span_ids, pa.binary()),
        pa.array(trace_flags, pa.uint8()),
        pa.array(timestamps_us, TS_US),
        pa.repeat(pa.scalar(now_us, TS_US), rows),
        pa.array(bodies, pa.string()),
        pa.array(severity_texts, pa.string()),
        pa.array(severity_numbers, pa.uint8()),
        pa.array(service_names, pa.string()).take(resource_take),
        resources.take(resource_take),
        pa.array(scope_names, pa.string()).take(pa.array(scope_rows, pa.int32())),
        pa.array(event_names, pa.string()),
        pa.MapArray.from_arrays(
            pa.array(attribute_offsets, pa.int32()),
            pa.array(attribute_keys, pa.string()),
            pa.array(attribute_values, pa.string()),
            type=STR_MAP,
        ),
    ]
    return pa.Table.from_arrays(columns, schema=LOG_ARROW_SCHEMA)


def _to_unix_ns(now: datetime | int) -> int:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        delta = now - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if isinstance(now, int) and not isinstance(now, bool):
        return now
    raise TypeError(f"now must be a datetime or integer nanoseconds, got {type(now).__name__}")


def _iso_utc(unix_ns: int) -> str:
    """ISO 8601 UTC with microseconds, e.g. ``2024-05-01T12:00:00.123456Z``."""
    moment = _EPOCH + timedelta(microseconds=unix_ns // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _set_original_timestamp(keys: list[str], values: list[str], start: int, original_ns: int) -> None:
    """Record the replaced timestamp on the current row; our value replaces any the sender set."""
    name = ORIGINAL_TIMESTAMP_ATTRIBUTE
    for index in range(len(keys) - 1, start - 1, -1):
        if keys[index] == name:
            del keys[index]
            del values[index]
    keys.append(name)
    values.append(_iso_utc(original_ns))


def _resource_attributes_into(resource: Resource, keys: list[str], values: list[str]) -> str:
    """Append the resource's map entries (always with ``service.name``) and return the service name."""
    attributes: dict[str, str] = {}
    for pair in resource.attributes:
        attributes[pair.key] = _any_value_text(pair.value)
    service_name = attributes.setdefault("service.name", "")
    keys.extend(attributes)
    values.extend(attributes.values())
    return service_name


def _scope_text(scope: InstrumentationScope) -> str:
    name = scope.name
    version = scope.version
    return f"{name}@{version}" if version else name


def _double_text(number: float) -> str:
    if math.isfinite(number):
        return orjson.dumps(number).decode()
    if math.isnan(number):
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"


def _any_value_text(value: AnyValue) -> str:
    """Text of an attribute value or body: strings as they are, everything else as compact JSON."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return str(value.int_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "double_value":
        return _double_text(value.double_value)
    if kind is None or kind == "string_value_strindex":
        # strindex points into a profiles dictionary that log requests do not have
        return ""
    return orjson.dumps(_any_value_object(value)).decode()


def _any_value_object(value: AnyValue) -> Any:
    """The JSON-serialisable Python value of an AnyValue (kvlist -> dict, array -> list, bytes -> base64)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        return value.double_value
    if kind == "kvlist_value":
        return {pair.key: _any_value_object(pair.value) for pair in value.kvlist_value.values}
    if kind == "array_value":
        return [_any_value_object(item) for item in value.array_value.values]
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None
