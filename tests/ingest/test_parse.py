"""parse_export_logs_request: protobuf first, OTLP/JSON and JSON Lines as fallback, clear errors otherwise."""

from __future__ import annotations

import base64
import json
import math
import random
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from logpond.ingest.errors import DecodeError
from logpond.ingest.otlp import parse_export_logs_request

from ._requests import any_value, export_request, log_record

TRACE_ID = bytes(range(1, 17))
SPAN_ID = bytes(range(1, 9))

ALL_KINDS: dict[str, Any] = {
    "string": "text",
    "empty string": "",
    "int": 42,
    "negative int": -(1 << 63),
    "double": 1.5,
    "bool": True,
    "false": False,
    "bytes": b"\x00\x01\xfe\xff",
    "array": [1, "two", 3.5, False, None, [b"\x02"]],
    "kvlist": {"nested": {"deeper": [1, {"x": "y"}]}, "n": 7},
    "empty kvlist": {},
    "empty array": [],
    "unicode": "grüße, 世界 🌍",
    "long": "x" * 20_000,
}


def full_request() -> ExportLogsServiceRequest:
    """A request exercising every AnyValue kind in bodies, attributes and resource attributes."""
    records = [
        log_record(
            body=value,
            attributes={"kind": name, **{f"attr.{key}": item for key, item in ALL_KINDS.items()}},
            time_unix_nano=1_700_000_000_000_000_001,
            observed_time_unix_nano=1_700_000_000_000_000_002,
            severity_number=17,
            severity_text="ERROR",
            trace_id=TRACE_ID,
            span_id=SPAN_ID,
            flags=0x01,
            event_name="app.event",
        )
        for name, value in ALL_KINDS.items()
    ]
    records.append(log_record(body=None))
    return export_request(
        *records,
        resource={"service.name": "api", "pid": 4242, "tags": ["a", "b"]},
        scope_name="app.scope",
        scope_version="1.0.0",
    )


def parse_json(document: Any) -> ExportLogsServiceRequest:
    return parse_export_logs_request(json.dumps(document).encode())


def first_record(document: Any) -> LogRecord:
    return parse_json(document).resource_logs[0].scope_logs[0].log_records[0]


# -- protobuf ------------------------------------------------------------------------------------------


def test_protobuf_round_trip_with_every_value_kind() -> None:
    """A serialized request parses back to an identical message."""
    request = full_request()
    assert parse_export_logs_request(request.SerializeToString()) == request


def test_empty_body_is_an_empty_request() -> None:
    """An empty body is a valid empty protobuf request (what an exporter sends for an empty batch)."""
    parsed = parse_export_logs_request(b"")
    assert parsed == ExportLogsServiceRequest()
    assert len(parsed.resource_logs) == 0


def test_protobuf_that_happens_to_start_like_json_still_parses() -> None:
    """A protobuf whose first length byte is '{' (0x7b) is not mistaken for broken JSON."""
    for size in range(0, 200):
        request = export_request(log_record(body="x" * size))
        data = request.SerializeToString()
        if data[1:2] == b"{":
            break
    else:
        pytest.fail("no body size gave a first length byte of 0x7b")
    assert data[:2] == b"\n{"
    assert parse_export_logs_request(data) == request


def test_truncated_protobuf_is_a_decode_error() -> None:
    """A protobuf body cut short is refused, with both decoders' reasons."""
    data = full_request().SerializeToString()
    for cut in (1, 2, 17, len(data) // 2, len(data) - 1):
        with pytest.raises(DecodeError) as excinfo:
            parse_export_logs_request(data[:cut])
        reason = excinfo.value.reason
        assert reason.startswith("Failed to decode JSON: ") and " or Protobuf: " in reason
        assert excinfo.value.status == 400


def test_protobuf_of_only_unknown_fields_is_refused() -> None:
    """Bytes that parse as protobuf but carry no OTLP field are not a request."""
    with pytest.raises(DecodeError, match="only unknown fields"):
        parse_export_logs_request(b"\x20\x05\x28\x07")


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes_are_a_decode_error(seed: int) -> None:
    """Random binary bodies are refused with a 400, never turned into rows."""
    rng = random.Random(seed)
    data = rng.randbytes(rng.randint(1, 2048))
    with pytest.raises(DecodeError, match="^Failed to decode JSON: .* or Protobuf: "):
        parse_export_logs_request(data)


def test_whitespace_only_body_is_a_decode_error() -> None:
    """A body of blanks is neither JSON nor an OTLP protobuf."""
    with pytest.raises(DecodeError):
        parse_export_logs_request(b"  \n\t ")


def test_invalid_utf8_in_a_protobuf_string_is_a_decode_error() -> None:
    """A string field that is not UTF-8 makes the protobuf invalid, as in every conforming decoder."""
    data = export_request(log_record(body="\u00e9")).SerializeToString().replace(b"\xc3\xa9", b"\xff\xfe")
    with pytest.raises(DecodeError):
        parse_export_logs_request(data)


# -- OTLP/JSON -----------------------------------------------------------------------------------------


def otlp_json_value(value: Any) -> dict[str, Any]:
    """The OTLP/JSON spelling of a plain Python value, written independently of the code under test."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return {"arrayValue": {"values": [otlp_json_value(item) for item in value]}}
    return {"kvlistValue": {"values": [{"key": k, "value": otlp_json_value(v)} for k, v in value.items()]}}


def otlp_json_attributes(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": otlp_json_value(value)} for key, value in attributes.items()]


def full_request_json() -> dict[str, Any]:
    """full_request() written by hand in OTLP/JSON: hex ids, 64-bit ints as strings, enums as ints."""
    records: list[dict[str, Any]] = [
        {
            "timeUnixNano": "1700000000000000001",
            "observedTimeUnixNano": 1_700_000_000_000_000_002,
            "severityNumber": 17,
            "severityText": "ERROR",
            "body": otlp_json_value(value),
            "attributes": otlp_json_attributes(
                {"kind": name, **{f"attr.{key}": item for key, item in ALL_KINDS.items()}}
            ),
            "flags": 1,
            "traceId": TRACE_ID.hex(),
            "spanId": SPAN_ID.hex().upper(),
            "eventName": "app.event",
        }
        for name, value in ALL_KINDS.items()
    ]
    records.append({"timeUnixNano": str(1_750_000_000_123_455_789)})
    return {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": otlp_json_attributes(
                        {"service.name": "api", "pid": 4242, "tags": ["a", "b"]}
                    )
                },
                "scopeLogs": [{"scope": {"name": "app.scope", "version": "1.0.0"}, "logRecords": records}],
            }
        ]
    }


def test_json_round_trip_with_every_value_kind() -> None:
    """Hand-written OTLP/JSON parses to the same message as the protobuf built with the classes."""
    parsed = parse_export_logs_request(json.dumps(full_request_json()).encode())
    assert parsed == full_request()


def test_json_accepts_numbers_names_and_proto_field_names() -> None:
    """64-bit ints as numbers, severity enum names and snake_case keys are all understood."""
    document = {
        "resource_logs": [
            {
                "scope_logs": [
                    {
                        "log_records": [
                            {
                                "time_unix_nano": 1_700_000_000_000_000_000,
                                "severityNumber": "SEVERITY_NUMBER_WARN2",
                                "body": {"int_value": 7},
                                "attributes": [{"key": "n", "value": {"intValue": 12}}],
                                "trace_id": TRACE_ID.hex(),
                            }
                        ]
                    }
                ]
            }
        ]
    }
    record = first_record(document)
    assert record.time_unix_nano == 1_700_000_000_000_000_000
    assert record.severity_number == 14
    assert record.body.int_value == 7
    assert record.attributes[0].value.int_value == 12
    assert record.trace_id == TRACE_ID


def test_json_from_protobufs_own_printer_parses_back() -> None:
    """JSON written by json_format (base64 ids, enum names, int64 strings) is accepted as well."""
    request = full_request()
    text = json_format.MessageToJson(request)
    assert parse_export_logs_request(text.encode()) == request


def test_json_special_doubles() -> None:
    """doubleValue accepts the proto3 JSON spellings NaN, Infinity and -Infinity."""
    document = {
        "resourceLogs": [
            {
                "scopeLogs": [
                    {
                        "logRecords": [
                            {"body": {"doubleValue": "NaN"}},
                            {"body": {"doubleValue": "Infinity"}},
                            {"body": {"doubleValue": "-Infinity"}},
                            {"body": {"doubleValue": "2.5"}},
                        ]
                    }
                ]
            }
        ]
    }
    records = parse_json(document).resource_logs[0].scope_logs[0].log_records
    assert math.isnan(records[0].body.double_value)
    assert [r.body.double_value for r in records[1:]] == [math.inf, -math.inf, 2.5]


def test_json_unknown_keys_are_ignored() -> None:
    """Unknown keys are skipped, as the OTLP/JSON spec requires of receivers."""
    document = full_request_json()
    document["somethingNew"] = {"x": 1}
    document["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["futureField"] = [1, 2]
    assert parse_export_logs_request(json.dumps(document).encode()) == full_request()


def test_pretty_printed_json_with_leading_blanks_parses() -> None:
    """Indented JSON spread over many lines, after leading whitespace, is one document."""
    text = "\n\n  " + json.dumps(full_request_json(), indent=2)
    assert parse_export_logs_request(text.encode()) == full_request()


def test_json_lines_are_merged() -> None:
    """Several OTLP/JSON objects, one per line, become one request in order."""
    first = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "one"}}]}]}]}
    second = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "two"}}]}]}]}
    body = f"{json.dumps(first)}\n\n{json.dumps(second)}\r\n".encode()
    parsed = parse_export_logs_request(body)
    bodies = [
        record.body.string_value
        for resource_logs in parsed.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
    ]
    assert bodies == ["one", "two"]


def test_json_lines_error_names_the_line() -> None:
    """A broken line in JSON Lines is reported with its line number."""
    good = json.dumps({"resourceLogs": []})
    with pytest.raises(DecodeError, match="line 3: "):
        parse_export_logs_request(f"{good}\n{good}\n{{broken\n".encode())


def test_json_lines_shape_error_names_the_line_and_field() -> None:
    """A wrongly typed field on some line names both the line and the field path."""
    good = json.dumps({"resourceLogs": []})
    bad = json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"flags": "x"}]}]}]})
    with pytest.raises(
        DecodeError, match=r"line 2: resourceLogs\[0\]\.scopeLogs\[0\]\.logRecords\[0\]\.flags"
    ):
        parse_export_logs_request(f"{good}\n{bad}".encode())


def test_invalid_json_is_a_decode_error_with_both_reasons() -> None:
    """Broken JSON reports the JSON reason and the protobuf reason, in PostHog's words."""
    with pytest.raises(DecodeError) as excinfo:
        parse_export_logs_request(b'{"resourceLogs": [')
    assert excinfo.value.reason.startswith("Failed to decode JSON: unexpected end of data")
    assert " or Protobuf: " in excinfo.value.reason


@pytest.mark.parametrize(
    ("record", "where", "what"),
    [
        ({"timeUnixNano": "soon"}, "timeUnixNano", "unsigned 64-bit integer"),
        ({"timeUnixNano": -1}, "timeUnixNano", "unsigned 64-bit integer"),
        ({"timeUnixNano": 1.5}, "timeUnixNano", "unsigned 64-bit integer"),
        ({"timeUnixNano": str(1 << 64)}, "timeUnixNano", "unsigned 64-bit integer"),
        ({"severityNumber": "LOUD"}, "severityNumber", "severity number"),
        ({"severityText": 5}, "severityText", "string"),
        ({"traceId": "not-hex!"}, "traceId", "hex id"),
        ({"traceId": 12}, "traceId", "string"),
        ({"body": "plain"}, "body", "object"),
        ({"body": {"intValue": "12a"}}, "body.intValue", "64-bit integer"),
        ({"body": {"boolValue": "true"}}, "body.boolValue", "true or false"),
        ({"body": {"bytesValue": "***"}}, "body.bytesValue", "base64"),
        ({"body": {"arrayValue": {"values": [{"intValue": []}]}}}, "body.arrayValue.values[0].intValue", ""),
        ({"attributes": {"k": "v"}}, "attributes", "array"),
        ({"attributes": [{"key": 1}]}, "attributes[0].key", "string"),
        (
            {"attributes": [{"key": "k", "value": {"doubleValue": "fast"}}]},
            "attributes[0].value.doubleValue",
            "",
        ),
    ],
)
def test_wrongly_typed_json_field_is_named(record: dict[str, Any], where: str, what: str) -> None:
    """A known field holding the wrong type is a 400 naming its full path."""
    document = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{}, record]}]}]}
    with pytest.raises(DecodeError) as excinfo:
        parse_export_logs_request(json.dumps(document).encode())
    assert f"resourceLogs[0].scopeLogs[0].logRecords[1].{where}: expected" in excinfo.value.reason
    assert what in excinfo.value.reason


def test_top_level_json_array_is_refused() -> None:
    """OTLP/JSON is an object; a top-level array is not silently reinterpreted."""
    with pytest.raises(DecodeError, match="expected a JSON object with resourceLogs"):
        parse_export_logs_request(b'[{"resourceLogs": []}]')


def test_empty_json_object_is_an_empty_request() -> None:
    """``{}`` is a valid OTLP/JSON request with nothing in it."""
    assert parse_export_logs_request(b"{}") == ExportLogsServiceRequest()


def test_json_nulls_mean_absent() -> None:
    """A field set to null is treated as not sent."""
    document = {
        "resourceLogs": [{"resource": None, "scopeLogs": [{"logRecords": [{"body": None, "flags": None}]}]}]
    }
    record = first_record(document)
    assert not record.HasField("body") and record.flags == 0


def test_json_base64_ids_must_have_id_length() -> None:
    """A non-hex id is accepted as base64 only when it decodes to 8 or 16 bytes."""
    ok = {
        "traceId": base64.b64encode(TRACE_ID).decode(),
        "spanId": base64.urlsafe_b64encode(SPAN_ID).decode(),
    }
    document = {"resourceLogs": [{"scopeLogs": [{"logRecords": [ok]}]}]}
    record = first_record(document)
    assert (record.trace_id, record.span_id) == (TRACE_ID, SPAN_ID)
    bad = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zzzz"}]}]}]}
    with pytest.raises(DecodeError, match="expected a hex id"):
        parse_export_logs_request(json.dumps(bad).encode())


def test_json_binary_garbage_reason_is_readable() -> None:
    """Binary that is neither format says it is not UTF-8 text rather than orjson's surrogate message."""
    with pytest.raises(DecodeError, match="Failed to decode JSON: not UTF-8 text or Protobuf: "):
        parse_export_logs_request(b"\xff\xfe\xfd\xfc")


def test_any_value_round_trip_helper_matches_classes() -> None:
    """The test's own OTLP/JSON writer agrees with json_format for every kind (guards the fixtures)."""
    for value in ALL_KINDS.values():
        printed = json_format.MessageToDict(any_value(value))
        written = otlp_json_value(value)
        if "bytesValue" in written or "doubleValue" in written or "stringValue" in written:
            assert printed == written
