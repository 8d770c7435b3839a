"""to_log_table / decode_log_table: OTLP log records to Arrow rows following the logs spec §10."""

from __future__ import annotations

import base64
import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from logpond.ingest.errors import DecodeError
from logpond.ingest.otlp import (
    ORIGINAL_TIMESTAMP_ATTRIBUTE,
    decode_log_table,
    parse_export_logs_request,
    to_log_table,
)
from logpond.ingest.severity import resolve_severity
from logpond.store.schema import LOG_ARROW_SCHEMA

from ._requests import HOUR_NS, NOW_NS, any_value, export_request, log_record

NOW = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=NOW_NS // 1000)
DAY_NS = 24 * HOUR_NS


def rows(
    request: ExportLogsServiceRequest, team_id: int = 7, now: datetime | int = NOW_NS
) -> list[dict[str, Any]]:
    """Rows through both entry points (which must agree), with maps as dicts."""
    table = to_log_table(request, team_id=team_id, now=now)
    fast = decode_log_table(request.SerializeToString(), team_id=team_id, now=now)
    assert table.schema.equals(LOG_ARROW_SCHEMA, check_metadata=True)
    assert fast.schema.equals(LOG_ARROW_SCHEMA, check_metadata=True)
    result = [_plain(row) for row in table.to_pylist()]
    assert [{**row, "uuid": None} for row in result] == [
        {**_plain(row), "uuid": None} for row in fast.to_pylist()
    ]
    return result


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    for column in ("attributes", "resource_attributes"):
        pairs = row[column]
        assert len({key for key, _ in pairs}) == len(pairs), f"repeated key in {column}"
        row[column] = dict(pairs)
    return row


def one_row(record: LogRecord, **kwargs: Any) -> dict[str, Any]:
    (row,) = rows(export_request(record, **kwargs))
    return row


# -- shape ---------------------------------------------------------------------------------------------


def test_schema_is_exactly_the_store_schema() -> None:
    """The table has LOG_ARROW_SCHEMA's fields, order, types and nullability, even when empty."""
    request = export_request(log_record(), log_record(body=None))
    for table in (
        to_log_table(request, team_id=1, now=NOW_NS),
        to_log_table(ExportLogsServiceRequest(), team_id=1, now=NOW_NS),
        decode_log_table(b"", team_id=1, now=NOW_NS),
        decode_log_table(request.SerializeToString(), team_id=1, now=NOW_NS),
    ):
        assert table.schema == LOG_ARROW_SCHEMA
        assert table.schema.equals(LOG_ARROW_SCHEMA, check_metadata=True)
        assert all(column.null_count == 0 for column in table.columns)


def test_empty_request_gives_zero_rows() -> None:
    """An empty request (or empty body) is zero rows, not an error."""
    assert to_log_table(ExportLogsServiceRequest(), team_id=1, now=NOW_NS).num_rows == 0
    assert decode_log_table(b"", team_id=1, now=NOW_NS).num_rows == 0


def test_one_row_per_record_in_order_across_resources_and_scopes() -> None:
    """Records of every ResourceLogs and ScopeLogs become rows in request order, with their own context."""
    request = ExportLogsServiceRequest()
    for resource_index in range(2):
        resource_logs = request.resource_logs.add()
        resource_logs.resource.attributes.add(key="service.name").value.string_value = f"svc{resource_index}"
        resource_logs.scope_logs.add()  # a scope without records adds no rows
        for scope_index in range(2):
            scope_logs = resource_logs.scope_logs.add()
            scope_logs.scope.name = f"scope{scope_index}"
            for record_index in range(3):
                scope_logs.log_records.append(
                    log_record(body=f"{resource_index}.{scope_index}.{record_index}")
                )
    result = rows(request, team_id=42)
    assert [row["body"] for row in result] == [
        f"{r}.{s}.{i}" for r in range(2) for s in range(2) for i in range(3)
    ]
    assert [row["service_name"] for row in result] == ["svc0"] * 6 + ["svc1"] * 6
    assert [row["instrumentation_scope"] for row in result] == (["scope0"] * 3 + ["scope1"] * 3) * 2
    assert {row["team_id"] for row in result} == {42}
    assert result[7]["resource_attributes"] == {"service.name": "svc1"}


# -- uuid ----------------------------------------------------------------------------------------------


def test_uuids_are_v7_unique_and_sorted_in_row_order() -> None:
    """Each row gets a UUIDv7 stamped with the receive time; a batch's ids sort in row order."""
    request = export_request(*[log_record(body=str(i)) for i in range(500)])
    ids = to_log_table(request, team_id=1, now=NOW_NS).column("uuid").to_pylist()
    assert len(set(ids)) == 500
    assert ids == sorted(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 7
        assert parsed.int >> 80 == NOW_NS // 1_000_000


# -- body ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("plain text", "plain text"),
        ("", ""),
        (None, ""),
        (42, "42"),
        (-7, "-7"),
        (1.5, "1.5"),
        (1.0, "1.0"),
        (True, "true"),
        (False, "false"),
        (b"\x00\x01\xff", "AAH/"),
        ([1, "a", None, 2.5, b"\x01"], '[1,"a",null,2.5,"AQ=="]'),
        ({"user": {"id": 5, "tags": ["x"]}, "ok": True}, '{"user":{"id":5,"tags":["x"]},"ok":true}'),
        ({}, "{}"),
        ([], "[]"),
        ("ü" * 300, "ü" * 300),
    ],
)
def test_body_text_for_every_value_kind(body: Any, text: str) -> None:
    """String bodies are kept; other kinds are JSON-encoded (bytes as base64); a missing body is ""."""
    assert one_row(log_record(body=body))["body"] == text


def test_non_finite_double_bodies() -> None:
    """NaN and infinities have no JSON spelling and use the proto3 JSON words."""
    assert [one_row(log_record(body=value))["body"] for value in (math.nan, math.inf, -math.inf)] == [
        "NaN",
        "Infinity",
        "-Infinity",
    ]


# -- attributes ----------------------------------------------------------------------------------------


def test_attribute_values_of_every_kind() -> None:
    """String attribute values are kept as they are; everything else becomes compact JSON text."""
    attributes = {
        "s": "GET",
        "empty": "",
        "unicode": "grüße 🌍",
        "long": "y" * 200,
        "huge": "z" * 20_000,
        "int": 200,
        "port": 8080,
        "big": 1 << 40,
        "negative": -(1 << 63),
        "double": 12.25,
        "tiny": 1e-7,
        "bool": True,
        "bytes": b"\xde\xad",
        "array": ["a", 1, [True]],
        "kvlist": {"k": "v", "n": {"m": 1.5}},
        "unset": None,
    }
    row = one_row(log_record(attributes=attributes))
    assert row["attributes"] == {
        "s": "GET",
        "empty": "",
        "unicode": "grüße 🌍",
        "long": "y" * 200,
        "huge": "z" * 20_000,
        "int": "200",
        "port": "8080",
        "big": str(1 << 40),
        "negative": str(-(1 << 63)),
        "double": "12.25",
        "tiny": "1e-7",
        "bool": "true",
        "bytes": "3q0=",
        "array": '["a",1,[true]]',
        "kvlist": '{"k":"v","n":{"m":1.5}}',
        "unset": "",
    }


def test_repeated_attribute_key_keeps_the_last_value() -> None:
    """A key sent twice (forbidden by OTLP, but possible) appears once, with the last value."""
    row = one_row(log_record(attributes=[("k", "first"), ("other", 1), ("k", "last")]))
    assert row["attributes"] == {"k": "last", "other": "1"}


def test_record_without_attributes_has_an_empty_map() -> None:
    """No attributes is an empty map, not null."""
    assert one_row(log_record())["attributes"] == {}


# -- resource, scope, service --------------------------------------------------------------------------


def test_resource_attributes_and_service_name() -> None:
    """Resource attributes become a string map and service_name comes from service.name."""
    row = one_row(log_record(), resource={"service.name": "checkout", "host.name": "web-1", "pid": 12})
    assert row["service_name"] == "checkout"
    assert row["resource_attributes"] == {"service.name": "checkout", "host.name": "web-1", "pid": "12"}


def test_missing_service_name_is_empty_and_still_in_the_resource_map() -> None:
    """Without service.name the map still has the key, with "", and service_name is ""."""
    row = one_row(log_record(), resource={"host.name": "web-1"})
    assert row["service_name"] == ""
    assert row["resource_attributes"] == {"host.name": "web-1", "service.name": ""}
    bare = one_row(log_record())
    assert (bare["service_name"], bare["resource_attributes"]) == ("", {"service.name": ""})


def test_non_string_service_name_is_its_json_text() -> None:
    """A service.name sent as a number is stored as its JSON text."""
    assert one_row(log_record(), resource={"service.name": 5})["service_name"] == "5"


@pytest.mark.parametrize(
    ("name", "version", "scope"),
    [("app", "1.2.3", "app@1.2.3"), ("app", "", "app"), ("", "", ""), ("", "2.0", "@2.0")],
)
def test_instrumentation_scope_formatting(name: str, version: str, scope: str) -> None:
    """The scope is name@version, or the name alone when there is no version."""
    assert one_row(log_record(), scope_name=name, scope_version=version)["instrumentation_scope"] == scope


def test_event_name_is_copied() -> None:
    """LogRecord.event_name is stored as is, "" when absent."""
    assert one_row(log_record(event_name="browser.click"))["event_name"] == "browser.click"
    assert one_row(log_record())["event_name"] == ""


# -- ids and flags -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trace_id", "span_id", "stored_trace", "stored_span"),
    [
        (bytes(range(1, 17)), bytes(range(1, 9)), bytes(range(1, 17)), bytes(range(1, 9))),
        (bytes(16), bytes(8), b"", b""),
        (b"", b"", b"", b""),
        (bytes(range(1, 16)), bytes(range(1, 8)), b"", b""),
        (bytes(range(1, 18)), bytes(range(1, 10)), b"", b""),
        (bytes(range(1, 9)), bytes(range(1, 17)), b"", b""),
    ],
)
def test_trace_and_span_ids_only_with_exact_lengths(
    trace_id: bytes, span_id: bytes, stored_trace: bytes, stored_span: bytes
) -> None:
    """Ids are kept only when exactly 16 / 8 bytes and not all zero."""
    row = one_row(log_record(trace_id=trace_id, span_id=span_id))
    assert (row["trace_id"], row["span_id"]) == (stored_trace, stored_span)


@pytest.mark.parametrize(("flags", "stored"), [(0, 0), (1, 1), (0xFF, 0xFF), (0x101, 1), (0xFFFFFFFF, 0xFF)])
def test_trace_flags_are_the_low_byte(flags: int, stored: int) -> None:
    """Only the W3C trace-flags byte of LogRecord.flags is stored."""
    assert one_row(log_record(flags=flags))["trace_flags"] == stored


# -- timestamps ----------------------------------------------------------------------------------------


def us(ns: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)


def test_timestamp_within_a_day_is_kept() -> None:
    """A record time up to 24 h either side of now is stored (to the microsecond) as sent."""
    for offset in (-DAY_NS, -HOUR_NS, 0, 999, HOUR_NS, DAY_NS):
        row = one_row(log_record(time_unix_nano=NOW_NS + offset))
        assert row["timestamp"] == us(NOW_NS + offset)
        assert ORIGINAL_TIMESTAMP_ATTRIBUTE not in row["attributes"]


def test_observed_timestamp_is_now() -> None:
    """observed_timestamp is the server's receive time, whatever the record says."""
    row = one_row(log_record(observed_time_unix_nano=NOW_NS - HOUR_NS))
    assert row["observed_timestamp"] == NOW


def test_zero_time_uses_observed_time() -> None:
    """Without time_unix_nano the record's observed time is used."""
    row = one_row(log_record(time_unix_nano=0, observed_time_unix_nano=NOW_NS - HOUR_NS))
    assert row["timestamp"] == us(NOW_NS - HOUR_NS)
    assert ORIGINAL_TIMESTAMP_ATTRIBUTE not in row["attributes"]


def test_zero_time_and_no_observed_time_uses_now() -> None:
    """With neither time set the row is stamped with now, and no original is recorded."""
    row = one_row(log_record(time_unix_nano=0, attributes={"a": "b"}))
    assert row["timestamp"] == NOW
    assert row["attributes"] == {"a": "b"}


@pytest.mark.parametrize(
    ("offset", "original"),
    [
        (-DAY_NS - 1_000, "2025-06-14T15:06:40.123455Z"),
        (-400 * DAY_NS, "2024-05-11T15:06:40.123456Z"),
        (DAY_NS + 1_000, "2025-06-16T15:06:40.123457Z"),
        (3650 * DAY_NS, "2035-06-13T15:06:40.123456Z"),
    ],
)
def test_time_more_than_a_day_off_becomes_now_with_the_original_kept(offset: int, original: str) -> None:
    """A record time over 24 h in the past or future is replaced by now; the original goes to attributes."""
    row = one_row(log_record(time_unix_nano=NOW_NS + offset, attributes={"a": 1}))
    assert row["timestamp"] == NOW
    assert row["attributes"] == {"a": "1", ORIGINAL_TIMESTAMP_ATTRIBUTE: original}


def test_epoch_seconds_mistake_is_caught() -> None:
    """A time sent in seconds instead of nanoseconds (1970) is replaced and reported."""
    row = one_row(log_record(time_unix_nano=1_750_000_000))
    assert row["timestamp"] == NOW
    assert row["attributes"][ORIGINAL_TIMESTAMP_ATTRIBUTE] == "1970-01-01T00:00:01.750000Z"


def test_observed_time_far_off_is_also_replaced() -> None:
    """When the fallback observed time is itself implausible, now is used and the observed time kept."""
    row = one_row(log_record(time_unix_nano=0, observed_time_unix_nano=NOW_NS - 2 * DAY_NS))
    assert row["timestamp"] == NOW
    assert row["attributes"][ORIGINAL_TIMESTAMP_ATTRIBUTE] == "2025-06-13T15:06:40.123456Z"


def test_original_timestamp_replaces_a_sender_attribute_of_that_name() -> None:
    """The server's $originalTimestamp wins over one the sender put in the attributes."""
    record = log_record(time_unix_nano=1, attributes={ORIGINAL_TIMESTAMP_ATTRIBUTE: "forged", "x": "y"})
    assert one_row(record)["attributes"] == {
        ORIGINAL_TIMESTAMP_ATTRIBUTE: "1970-01-01T00:00:00.000000Z",
        "x": "y",
    }


def test_now_as_datetime_or_nanoseconds_is_the_same() -> None:
    """``now`` may be an aware datetime or integer nanoseconds."""
    request = export_request(log_record(time_unix_nano=0), log_record(time_unix_nano=5))
    by_int = rows(request, now=NOW_NS // 1000 * 1000)
    by_datetime = rows(request, now=NOW)
    assert [{**row, "uuid": None} for row in by_int] == [{**row, "uuid": None} for row in by_datetime]


def test_invalid_now_and_team_are_refused() -> None:
    """A naive datetime, a non-time value, or a team id outside Int32 is a programming error."""
    request = export_request(log_record())
    with pytest.raises(ValueError, match="timezone-aware"):
        to_log_table(request, team_id=1, now=datetime(2025, 1, 1))
    with pytest.raises(TypeError):
        to_log_table(request, team_id=1, now=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="team_id"):
        to_log_table(request, team_id=1 << 31, now=NOW_NS)


# -- severity through the table ------------------------------------------------------------------------


def test_severity_columns() -> None:
    """Number, text and JSON-body levels reach the severity columns as severity.py decides."""
    records = [
        log_record(severity_number=9, severity_text="whatever"),
        log_record(severity_number=0, severity_text="WARNING"),
        log_record(severity_number=0, severity_text=""),
        log_record(severity_number=30, severity_text="Error"),  # type: ignore[arg-type]
        log_record(body='{"level":"error","msg":"x"}', severity_number=9, severity_text="INFO"),
        log_record(body={"log": {"level": "debug"}}, severity_number=0),
        log_record(body="{not json level", severity_number=18),
    ]
    result = rows(export_request(*records))
    assert [(row["severity_text"], row["severity_number"]) for row in result] == [
        ("info", 9),
        ("warn", 13),
        ("info", 9),
        ("error", 17),
        ("error", 17),
        ("debug", 5),
        ("error", 18),
    ]


# -- the byte-level fast path --------------------------------------------------------------------------


def test_decode_log_table_accepts_json_bodies() -> None:
    """decode_log_table takes OTLP/JSON bodies too, with the same rows as the protobuf."""
    request = export_request(log_record(body="hi", attributes={"n": 3}), resource={"service.name": "api"})
    document = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
                "scopeLogs": [
                    {
                        "scope": {},
                        "logRecords": [
                            {
                                "timeUnixNano": str(NOW_NS - 1_000),
                                "body": {"stringValue": "hi"},
                                "attributes": [{"key": "n", "value": {"intValue": "3"}}],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    from_json = decode_log_table(json.dumps(document).encode(), team_id=7, now=NOW_NS).to_pylist()
    expected = rows(request)
    assert [{**_plain(row), "uuid": None} for row in from_json] == [{**row, "uuid": None} for row in expected]


def test_decode_log_table_reports_errors_like_the_parser() -> None:
    """Bad bodies fail with the same DecodeError text as parse_export_logs_request."""
    for data in (b"\x0a\x05abc", b'{"resourceLogs": 5}', b"\xff\xfe", b"\x20\x01"):
        with pytest.raises(DecodeError) as parsed:
            parse_export_logs_request(data)
        with pytest.raises(DecodeError) as fast:
            decode_log_table(data, team_id=1, now=NOW_NS)
        assert fast.value.reason == parsed.value.reason


def test_invalid_utf8_inside_an_attribute_value_is_a_decode_error() -> None:
    """The fast path notices a non-UTF-8 string value that the full parser rejects, and fails the same way."""
    marker = "\u00e9\u00e9\u00e9"
    for value in (marker, "x" * 300 + marker, {"k": marker}):
        data = export_request(log_record(attributes={"a": value})).SerializeToString()
        broken = data.replace(marker.encode(), b"\xff\xfe\xfd\xfc\xfb\xfa")
        with pytest.raises(DecodeError) as parsed:
            parse_export_logs_request(broken)
        with pytest.raises(DecodeError) as fast:
            decode_log_table(broken, team_id=1, now=NOW_NS)
        assert fast.value.reason == parsed.value.reason


def test_malformed_attribute_value_bytes_are_a_decode_error() -> None:
    """An attribute whose AnyValue bytes are not a valid message fails like the full parser does."""
    record = log_record(attributes={"a": "abcdef"})
    data = export_request(record).SerializeToString()
    # turn the AnyValue's string tag (0x0a) into a tag of wire type 7, which does not exist
    broken = data.replace(b"\x0a\x06abcdef", b"\x0f\x06abcdef")
    assert broken != data
    with pytest.raises(DecodeError):
        parse_export_logs_request(broken)
    with pytest.raises(DecodeError):
        decode_log_table(broken, team_id=1, now=NOW_NS)


# -- a reference model, checked on generated requests ---------------------------------------------------


def reference_text(value: AnyValue) -> str:
    """The spec's text of a value, written directly against the generated classes."""
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "string_value":
        return value.string_value
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind == "int_value":
        return str(value.int_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "double_value":
        number = value.double_value
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
    return orjson.dumps(reference_object(value)).decode()


def reference_object(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "kvlist_value":
        return {pair.key: reference_object(pair.value) for pair in value.kvlist_value.values}
    if kind == "array_value":
        return [reference_object(item) for item in value.array_value.values]
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind is None:
        return None
    return getattr(value, kind)


def reference_rows(request: ExportLogsServiceRequest, team_id: int, now_ns: int) -> list[dict[str, Any]]:
    """Rows per the logs spec §10, one record at a time (uuid left out)."""
    result = []
    for resource_logs in request.resource_logs:
        resource = {pair.key: reference_text(pair.value) for pair in resource_logs.resource.attributes}
        resource.setdefault("service.name", "")
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope
            scope_text = f"{scope.name}@{scope.version}" if scope.version else scope.name
            for record in scope_logs.log_records:
                attributes = {pair.key: reference_text(pair.value) for pair in record.attributes}
                timestamp = record.time_unix_nano or record.observed_time_unix_nano or now_ns
                if abs(timestamp - now_ns) > DAY_NS:
                    original = us(timestamp).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                    attributes[ORIGINAL_TIMESTAMP_ATTRIBUTE] = original
                    timestamp = now_ns
                body = reference_text(record.body)
                severity_text, severity_number = resolve_severity(
                    record.severity_text, record.severity_number, body
                )
                trace_id, span_id = record.trace_id, record.span_id
                result.append(
                    {
                        "team_id": team_id,
                        "uuid": None,
                        "trace_id": trace_id if len(trace_id) == 16 and any(trace_id) else b"",
                        "span_id": span_id if len(span_id) == 8 and any(span_id) else b"",
                        "trace_flags": record.flags & 0xFF,
                        "timestamp": us(timestamp),
                        "observed_timestamp": us(now_ns + 1000 * len(result)),
                        "body": body,
                        "severity_text": severity_text,
                        "severity_number": severity_number,
                        "service_name": resource["service.name"],
                        "resource_attributes": resource,
                        "instrumentation_scope": scope_text,
                        "event_name": record.event_name,
                        "attributes": attributes,
                    }
                )
    return result


plain_values = st.recursive(
    st.none()
    | st.text(max_size=300)
    | st.sampled_from(["", "x" * 127, "y" * 128, "z" * 16_384, "é" * 64])
    | st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
    | st.sampled_from([0, 1, 127, 128, 256, 8_080, 16_383, 16_384, 1 << 35, -1])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=6,
)
keys = st.sampled_from(["a", "b", "http.method", "$originalTimestamp", ""]) | st.text(max_size=12)
json_level_bodies = st.sampled_from(
    ['{"level":"warn"}', '{"log":{"level":"ERR"}}', '{"severity":5}', "{oops"]
)
known_severity_texts = st.sampled_from(["", "INFO", "warning", "Err", "fatal", "nonsense", " debug "])
severity_texts = known_severity_texts | st.text(max_size=6)


@st.composite
def log_records(draw: st.DrawFn) -> LogRecord:
    time_choice = draw(st.sampled_from(["near", "zero", "far", "any"]))
    time_unix_nano = {
        "near": NOW_NS + draw(st.integers(-DAY_NS, DAY_NS)),
        "zero": 0,
        "far": NOW_NS + draw(st.sampled_from([-1, 1])) * draw(st.integers(DAY_NS + 1, 100 * DAY_NS)),
        "any": draw(st.integers(0, (1 << 64) - 1)),
    }[time_choice]
    return log_record(
        body=draw(plain_values | json_level_bodies),
        attributes=draw(st.lists(st.tuples(keys, plain_values), max_size=5)),
        time_unix_nano=time_unix_nano,
        observed_time_unix_nano=draw(st.sampled_from([0, NOW_NS - HOUR_NS, NOW_NS - 3 * DAY_NS])),
        severity_number=draw(st.integers(-3, 30)),
        severity_text=draw(severity_texts),
        trace_id=draw(
            st.sampled_from([b"", bytes(16), bytes(range(16)), bytes(range(1, 17))]) | st.binary(max_size=20)
        ),
        span_id=draw(st.sampled_from([b"", bytes(8), bytes(range(1, 9))]) | st.binary(max_size=10)),
        flags=draw(st.integers(0, (1 << 32) - 1)),
        event_name=draw(st.sampled_from(["", "click"])),
    )


@st.composite
def export_requests(draw: st.DrawFn) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        resource_logs = request.resource_logs.add()
        for key, value in draw(st.lists(st.tuples(keys, plain_values), max_size=3)):
            resource_logs.resource.attributes.add(key=key, value=any_value(value))
        for _ in range(draw(st.integers(0, 2))):
            scope_logs = resource_logs.scope_logs.add()
            scope_logs.scope.name = draw(st.sampled_from(["", "lib"]))
            scope_logs.scope.version = draw(st.sampled_from(["", "0.1"]))
            scope_logs.log_records.extend(draw(st.lists(log_records(), max_size=4)))
    return request


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "uuid": None}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(export_requests())
def test_rows_match_the_reference_model(request: ExportLogsServiceRequest) -> None:
    """On generated requests, both entry points give exactly the rows the spec describes."""
    expected = reference_rows(request, 7, NOW_NS)
    assert [_comparable(row) for row in rows(request)] == expected
    assert to_log_table(request, team_id=7, now=NOW_NS).num_rows == len(expected)


def test_table_is_plain_arrow() -> None:
    """The result is an ordinary pyarrow.Table that concatenates with other batches."""
    first = to_log_table(export_request(log_record(body="a")), team_id=1, now=NOW_NS)
    second = decode_log_table(export_request(log_record(body="b")).SerializeToString(), team_id=1, now=NOW_NS)
    combined = pa.concat_tables([first, second])
    assert combined.column("body").to_pylist() == ["a", "b"]
