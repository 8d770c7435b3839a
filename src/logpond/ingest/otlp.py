"""OTLP/HTTP logs: decode a request body and turn it into Arrow log rows (logs spec §10, HTTP spec §5.2).

Three pure steps::

    data = decode_body(body, max_decompressed_bytes=limit)         # gzip by magic bytes, bounded
    request = parse_export_logs_request(data)                       # protobuf, else OTLP/JSON or JSON Lines
    table = to_log_table(request, team_id=team, now=received_at)    # one row per LogRecord, LOG_ARROW_SCHEMA

The ingestion endpoint should call ``decode_log_table(data, team_id=.., now=..)`` for the last two: same
rows and errors, but protobuf bodies are converted straight from the bytes without building the full
message tree first (see "Rows" below for why that is faster).

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
  inside arrays and kvlists they become ``null``, as JSON has no spelling for them), arrays as lists,
  kvlists as objects (a repeated key: the last one wins), bytes as base64 (a quoted JSON string inside
  arrays and kvlists; the bare base64 text at the top level, which is what PostHog's ``JSONExtractString``
  reads back from its JSON-encoded value). An empty AnyValue is ``""``.
- **Repeated attribute keys** in a log record (the OTLP spec forbids them; SDKs never send them) keep the
  last value, as do repeated keys in a resource. ``$originalTimestamp`` (added when a record's timestamp is
  replaced) replaces a sender's attribute of the same name.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from logpond.ingest.errors import DecodeError, PayloadTooLarge
from logpond.ingest.severity import TEXT_BY_NUMBER, resolve_severity
from logpond.ingest.uuid7 import uuid7_batch
from logpond.store.schema import LOG_ARROW_SCHEMA, STR_MAP, TS_US

__all__ = [
    "ORIGINAL_TIMESTAMP_ATTRIBUTE",
    "decode_body",
    "decode_log_table",
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
        if rest[:2] == _GZIP_MAGIC:
            continue  # another member
        # (checked only once, at the very end: copying the rest at every member would be quadratic)
        if rest.tobytes().strip(b"\x00"):
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
    if _looks_like_json(data):
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


def _looks_like_json(data: bytes) -> bool:
    blanks = _LEADING_BLANKS.match(data)
    offset = blanks.end() if blanks else 0
    return data[offset : offset + 1] in (b"{", b"[")


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
        self.path = f"{segment}.{self.path}" if self.path else segment
        return self

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


def _parse_json(data: bytes) -> ExportLogsServiceRequest:
    try:
        documents = [(1, orjson.loads(data))]
    except orjson.JSONDecodeError as exc:
        # orjson reports a second top-level value as "unexpected content after document": JSON Lines
        if "after document" not in str(exc):
            raise _JsonError(_orjson_reason(exc)) from None
        documents = _parse_json_lines(data)
    request = ExportLogsServiceRequest()
    multi = len(documents) > 1
    for number, document in documents:
        try:
            _json_request_into(request, document)
        except _JsonError as exc:
            if multi:
                raise _JsonError(f"line {number}: {exc}") from None
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
            raise _JsonError(f"line {number}: {_orjson_reason(exc)}") from None
    return documents


def _orjson_reason(exc: orjson.JSONDecodeError) -> str:
    message = str(exc)
    # orjson words binary input as "str is not valid UTF-8: surrogates not allowed", which misleads
    if "not valid UTF-8" in message:
        return "not UTF-8 text"
    return message


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


# at most 20 digits: enough for any 64-bit value, and int() of a huge digit string would be slow or fail
_DECIMAL: Final[re.Pattern[str]] = re.compile(r"-?[0-9]{1,20}")


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
            target.array_value.SetInParent()  # an empty array is still an array, not an empty AnyValue
            values = target.array_value.values
            for index, element in enumerate(_json_array(_json_object(item, key).get("values"), "values")):
                try:
                    _json_any_value_into(values.add(), element)
                except _JsonError as exc:
                    raise exc.within(f"{key}.values[{index}]") from None
        elif key in ("kvlistValue", "kvlist_value"):
            target.kvlist_value.SetInParent()  # an empty kvlist is still a kvlist, not an empty AnyValue
            _json_attributes_into(target.kvlist_value.values, _json_object(item, key).get("values"), f"{key}.values")


# ---------------------------------------------------------------------------------------------------------
# 3. Rows: ExportLogsServiceRequest -> pyarrow.Table with LOG_ARROW_SCHEMA
# ---------------------------------------------------------------------------------------------------------
#
# Reading attributes through the generated classes costs a Python wrapper object per KeyValue and per
# AnyValue (about 0.6 µs per attribute here), which dominated the whole conversion. So rows are read from
# a *wire view*: the same messages declared in a private descriptor pool, except that
# ``LogRecord.body`` is ``bytes`` and ``LogRecord.attributes`` is ``map<string, bytes>``. A KeyValue and a
# map entry have the same wire format (key = 1, value = 2), so upb parses the request unchanged and hands
# back each attribute value as the serialized AnyValue, which is decoded below without building a message
# for the common cases (a string is ``0x0a <length> <utf-8>``). The map also drops repeated keys (the last
# one wins) for free. Everything else (resources, scopes, the other LogRecord fields) is read as usual.

_DAY_NS: Final[int] = 24 * 3600 * 1_000_000_000
_EPOCH: Final[datetime] = datetime(1970, 1, 1, tzinfo=UTC)
_ZERO_TRACE_ID: Final[bytes] = bytes(16)
_ZERO_SPAN_ID: Final[bytes] = bytes(8)
_INT32_MIN: Final[int] = -(1 << 31)
_INT32_MAX: Final[int] = (1 << 31) - 1
_STRING_TAG: Final[int] = 0x0A  # AnyValue.string_value: field 1, wire type 2 (length-delimited)
_INT_TAG: Final[int] = 0x18  # AnyValue.int_value: field 3, varint
_DOUBLE_TAG: Final[int] = 0x21  # AnyValue.double_value: field 4, fixed64


def _build_wire_request_class() -> type[Any]:
    pool = descriptor_pool.DescriptorPool()
    for module in (common_pb2, resource_pb2, logs_pb2, logs_service_pb2):
        file_proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(file_proto)
        if module is logs_pb2:
            _patch_log_record(file_proto)
        pool.Add(file_proto)
    descriptor = pool.FindMessageTypeByName(ExportLogsServiceRequest.DESCRIPTOR.full_name)
    wire_class: type[Any] = message_factory.GetMessageClass(descriptor)
    return wire_class


def _patch_log_record(file_proto: descriptor_pb2.FileDescriptorProto) -> None:
    field_type = descriptor_pb2.FieldDescriptorProto
    (record,) = [message for message in file_proto.message_type if message.name == "LogRecord"]
    entry = record.nested_type.add(name="AttributesEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=field_type.TYPE_STRING, label=field_type.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=field_type.TYPE_BYTES, label=field_type.LABEL_OPTIONAL)
    for field in record.field:
        if field.name == "attributes":
            field.type_name = f".{file_proto.package}.LogRecord.AttributesEntry"
        elif field.name == "body":
            field.type = field_type.TYPE_BYTES
            field.ClearField("type_name")


_WireRequest: Final[type[Any]] = _build_wire_request_class()


class _MalformedValue(Exception):
    """A serialized AnyValue in the wire view that the full parser would have rejected."""


def to_log_table(request: ExportLogsServiceRequest, *, team_id: int, now: datetime | int) -> pa.Table:
    """Return one row per LogRecord in ``request``, with exactly ``LOG_ARROW_SCHEMA``.

    ``now`` is the server's receive time, a timezone-aware datetime or integer nanoseconds since the
    epoch; it becomes the ``observed_timestamp`` (plus the record's index in microseconds, so each record
    has its own), the UUIDv7 timestamp, and the fallback for
    missing or implausible (more than 24 h away) record timestamps. Repeated attribute keys in a record
    keep the last value.
    """
    # Re-serializing (C, ~1 µs/record) and reading the wire view is still cheaper than walking the
    # generated message tree; the HTTP path skips this by calling decode_log_table on the raw bytes.
    view = _WireRequest.FromString(request.SerializeToString())
    try:
        return _rows_from_wire_view(view, team_id, _to_unix_ns(now))
    except _MalformedValue as exc:  # a parsed request holds only valid values; kept for completeness
        raise DecodeError(f"Invalid OTLP value: {exc}") from None


def decode_log_table(data: bytes, *, team_id: int, now: datetime | int) -> pa.Table:
    """``to_log_table(parse_export_logs_request(data), ...)`` in one step, without the message tree.

    Same rows, same errors (DecodeError); this is the fast path for the ingestion endpoint.
    """
    now_ns = _to_unix_ns(now)
    if not _looks_like_json(data):
        view = _WireRequest()
        try:
            view.ParseFromString(data)
        except ProtobufDecodeError:
            view = None
        if view is not None and (view.resource_logs or not data):
            try:
                return _rows_from_wire_view(view, team_id, now_ns)
            except _MalformedValue:
                pass  # the full parser below reports it in the usual words
    return to_log_table(parse_export_logs_request(data), team_id=team_id, now=now_ns)


def _rows_from_wire_view(request: Any, team_id: int, now_ns: int) -> pa.Table:
    if not _INT32_MIN <= team_id <= _INT32_MAX:
        raise ValueError(f"team_id out of Int32 range: {team_id}")
    earliest = now_ns - _DAY_NS
    latest = now_ns + _DAY_NS

    # Row columns, filled in one pass. Resource- and scope-level values are computed once per
    # ResourceLogs / ScopeLogs and expanded to rows at the end with Arrow's take(); everything that can be
    # checked column-wise (id lengths, flags, severity numbers) is left to Arrow too.
    timestamps_ns: list[int] = []
    trace_ids: list[bytes] = []
    span_ids: list[bytes] = []
    trace_flags: list[int] = []
    raw_bodies: list[bytes] = []
    severity_texts: list[str] = []
    severity_numbers: list[int] = []
    event_names: list[str] = []
    attribute_keys: list[str] = []
    raw_attribute_values: list[bytes] = []
    attribute_offsets: list[int] = [0]
    resource_rows: list[int] = []
    scope_rows: list[int] = []
    resource_keys: list[str] = []
    resource_values: list[str] = []
    resource_offsets: list[int] = [0]
    service_names: list[str] = []
    scope_names: list[str] = []

    # local bindings: each attribute lookup on a list costs a dict probe per call in the hot loop
    ts_append = timestamps_ns.append
    trace_append = trace_ids.append
    span_append = span_ids.append
    flags_append = trace_flags.append
    body_append = raw_bodies.append
    sev_text_append = severity_texts.append
    sev_number_append = severity_numbers.append
    event_append = event_names.append
    keys_extend = attribute_keys.extend
    values_extend = raw_attribute_values.extend
    offset_append = attribute_offsets.append

    for resource_logs in request.resource_logs:
        resource_index = len(service_names)
        service_names.append(_resource_attributes_into(resource_logs.resource, resource_keys, resource_values))
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
                timestamp = record.time_unix_nano
                attributes = record.attributes
                if earliest <= timestamp <= latest:
                    ts_append(timestamp)
                    # (values() and items() of a upb map are Python-level mixins, several times slower
                    # than iterating its keys and looking each one up from C)
                    keys_extend(attributes)
                    values_extend(map(attributes.__getitem__, attributes))
                else:
                    timestamp, entries = _fallback_timestamp(record, now_ns, earliest, latest)
                    ts_append(timestamp)
                    keys_extend(entries)
                    values_extend(entries.values())
                offset_append(len(attribute_keys))
                trace_append(record.trace_id)
                span_append(record.span_id)
                flags_append(record.flags)
                body_append(record.body)
                sev_number_append(record.severity_number)
                sev_text_append(record.severity_text)
                event_append(record.event_name)

    rows = len(timestamps_ns)
    try:
        bodies = _any_value_texts(raw_bodies)
        attribute_values = _any_value_texts(raw_attribute_values)
    except (UnicodeDecodeError, ProtobufDecodeError) as exc:
        raise _MalformedValue(str(exc)) from None
    body_array = pa.array(bodies, pa.string())
    severity_text_array, severity_number_array = _severity_columns(severity_texts, severity_numbers, bodies, body_array)
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
        _valid_ids(trace_ids, 16, _ZERO_TRACE_ID),
        _valid_ids(span_ids, 8, _ZERO_SPAN_ID),
        pc.bit_wise_and(pa.array(trace_flags, pa.uint32()), 0xFF).cast(pa.uint8()),
        pc.divide(pa.array(timestamps_ns, pa.int64()), 1000).cast(TS_US),
        # the i-th record of a request is observed i microseconds after its receipt: every record gets its
        # own observed time, so a live tail can resume between two records of one large request
        pa.array(range(now_ns // 1000, now_ns // 1000 + rows), pa.int64()).cast(TS_US),
        body_array,
        severity_text_array,
        severity_number_array,
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


def _fallback_timestamp(record: Any, now_ns: int, earliest: int, latest: int) -> tuple[int, dict[str, bytes]]:
    """The rare path: no ``time_unix_nano``, or one more than 24 h from now (see the logs spec §10).

    Returns the timestamp to store and the record's attributes, plus ``$originalTimestamp`` (serialized
    as an AnyValue, like the other values) when the record's own time had to be replaced.
    """
    entries = dict(record.attributes.items())
    timestamp = record.time_unix_nano or record.observed_time_unix_nano or now_ns
    if not earliest <= timestamp <= latest:
        entries[ORIGINAL_TIMESTAMP_ATTRIBUTE] = AnyValue(string_value=_iso_utc(timestamp)).SerializeToString()
        timestamp = now_ns
    return timestamp, entries


def _valid_ids(ids: list[bytes], size: int, zero: bytes) -> pa.Array:
    """Ids of exactly ``size`` bytes that are not all zero; anything else becomes b""."""
    array = pa.array(ids, pa.binary())
    valid = pc.and_(pc.equal(pc.binary_length(array), size), pc.not_equal(array, pa.scalar(zero)))
    return pc.if_else(valid, array, pa.scalar(b"", pa.binary()))


_NUMBER_TO_TEXT: Final[pa.Array] = pa.array(TEXT_BY_NUMBER, pa.string())


def _severity_columns(
    texts: list[str], numbers: list[int], bodies: list[str], body_array: pa.Array
) -> tuple[pa.Array, pa.Array]:
    """Severity text and number columns; see ``severity.py`` for the precedence rules.

    Rows with a severity number in 1–24 and a body that is not a JSON object map through a table in
    Arrow; only the others (no number, or a possible level in the body) go through resolve_severity.
    """
    number_array = pa.array(numbers, pa.int32())
    known = pc.and_(pc.greater(number_array, 0), pc.less(number_array, 25))
    text_array = _NUMBER_TO_TEXT.take(pc.if_else(known, number_array, 0))
    slow = pc.or_(pc.invert(known), pc.starts_with(body_array, "{"))
    slow_rows = pc.indices_nonzero(slow).to_pylist()
    if not slow_rows:
        return text_array, number_array.cast(pa.uint8())
    resolved = [resolve_severity(texts[row], numbers[row], bodies[row]) for row in slow_rows]
    text_array = pc.replace_with_mask(text_array, slow, pa.array([text for text, _ in resolved], pa.string()))
    number_array = pc.replace_with_mask(number_array, slow, pa.array([number for _, number in resolved], pa.int32()))
    return text_array, number_array.cast(pa.uint8())


class _TextMemo(dict[bytes, str]):
    """Serialized AnyValue -> text, computed on first use.

    Non-string values repeat a lot within a batch (status codes, booleans, line numbers), and a hit is a
    single C-level dict lookup instead of a Python call.
    """

    def __missing__(self, raw: bytes) -> str:
        text = self[raw] = _raw_any_value_text(raw)
        return text


def _any_value_texts(raw_values: list[bytes]) -> list[str]:
    """Texts of serialized AnyValues; a short string (the usual case) is decoded inline."""
    memo = _TextMemo()
    return [
        raw[2:].decode()
        if len(raw) > 1 and raw[0] == _STRING_TAG and len(raw) - 2 == raw[1]  # one-byte length: < 128
        else memo[raw]
        for raw in raw_values
    ]


def _raw_any_value_text(raw: bytes) -> str:
    """Text of one serialized AnyValue that is not a short string; same result as ``_any_value_text``."""
    size = len(raw)
    if not size:
        return ""
    tag = raw[0]
    # the exact encodings of the usual scalar values, recognised without building a message
    if tag == _INT_TAG:
        if size == 2:
            return str(raw[1])
        if size == 3 and raw[1] & 0x80 and not raw[2] & 0x80:
            return str((raw[1] & 0x7F) | raw[2] << 7)
    elif tag == _DOUBLE_TAG and size == 9:
        return _double_text(_unpack_double(raw, 1)[0])
    elif raw == b"\x10\x01":
        return "true"
    elif raw == b"\x10\x00":
        return "false"
    return _any_value_text(AnyValue.FromString(raw))


_unpack_double: Final[Callable[[bytes, int], tuple[float]]] = struct.Struct("<d").unpack_from


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


def _resource_attributes_into(resource: Any, keys: list[str], values: list[str]) -> str:
    """Append the resource's map entries (always with ``service.name``) and return the service name."""
    attributes: dict[str, str] = {}
    for pair in resource.attributes:
        attributes[pair.key] = _any_value_text(pair.value)
    service_name = attributes.setdefault("service.name", "")
    keys.extend(attributes)
    values.extend(attributes.values())
    return service_name


def _scope_text(scope: Any) -> str:
    name: str = scope.name
    version: str = scope.version
    return f"{name}@{version}" if version else name


def _double_text(number: float) -> str:
    if math.isfinite(number):
        return orjson.dumps(number).decode()
    if math.isnan(number):
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"


def _any_value_text(value: Any) -> str:
    """Text of an attribute value or body: strings as they are, everything else as compact JSON."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return str(value.string_value)
    if kind == "int_value":
        return str(value.int_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "double_value":
        return _double_text(value.double_value)
    if kind == "bytes_value":
        # the text a JSON consumer reads back from the JSON-encoded value (as PostHog's JSONExtractString
        # does): base64 without the quotes
        return base64.b64encode(value.bytes_value).decode("ascii")
    if kind is None or kind == "string_value_strindex":
        # strindex points into a profiles dictionary that log requests do not have
        return ""
    return orjson.dumps(_any_value_object(value)).decode()


def _any_value_object(value: Any) -> Any:
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
