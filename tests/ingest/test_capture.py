"""PostHog capture: body decoding (gzip, base64, lz64, form, GET) and event parsing (shapes, times, tokens)."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import pytest

from logpond.ingest.capture import (
    CaptureBatch,
    InvalidEvent,
    MixedTokens,
    decode_capture_body,
    lz_decompress_from_base64,
    parse_events,
)
from logpond.ingest.errors import DecodeError, IngestError, PayloadTooLarge

LIMIT = 1 << 20
NOW = datetime(2025, 6, 15, 15, 6, 40, 123456, tzinfo=UTC)
TOKEN = "phc_test_token"
EVENT = {"event": "$pageview", "distinct_id": "user-1", "properties": {"$current_url": "https://x.test/ü"}}
PAYLOAD = {"api_key": TOKEN, "batch": [EVENT]}


def decode(
    body: bytes,
    query: Mapping[str, str] | None = None,
    content_type: str | None = "application/json",
    content_encoding: str | None = None,
    limit: int = LIMIT,
) -> Any:
    return decode_capture_body(
        body,
        query=query or {},
        content_type=content_type,
        content_encoding=content_encoding,
        max_decompressed_bytes=limit,
    )


def to_json(value: Any) -> bytes:
    return json.dumps(value).encode()


# ---------------------------------------------------------------------------------------------------------
# LZ-string compressToBase64, written from lz-string 1.4's _compress to derive test vectors
# ---------------------------------------------------------------------------------------------------------

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def lz_compress_to_base64(text: str) -> str:
    """LZ-string's compressToBase64, over UTF-16 code units like the JavaScript original."""
    units = text.encode("utf-16-le", "surrogatepass")
    chars = [chr(int.from_bytes(units[i : i + 2], "little")) for i in range(0, len(units), 2)]
    out: list[str] = []
    state = {"val": 0, "pos": 0}

    def write(value: int, bits: int) -> None:
        for _ in range(bits):
            state["val"] = (state["val"] << 1) | (value & 1)
            value >>= 1
            if state["pos"] == 5:
                state["pos"] = 0
                out.append(_ALPHABET[state["val"]])
                state["val"] = 0
            else:
                state["pos"] += 1

    dictionary: dict[str, int] = {}
    to_create: set[str] = set()
    enlarge_in, dict_size, num_bits = 2, 3, 2
    w = ""

    def produce(w: str) -> None:
        nonlocal enlarge_in, num_bits
        if w in to_create:
            code = ord(w[0])
            if code < 256:
                write(0, num_bits)
                write(code, 8)
            else:
                write(1, num_bits)
                write(code, 16)
            enlarge_in -= 1
            if enlarge_in == 0:
                enlarge_in, num_bits = 1 << num_bits, num_bits + 1
            to_create.discard(w)
        else:
            write(dictionary[w], num_bits)
        enlarge_in -= 1
        if enlarge_in == 0:
            enlarge_in, num_bits = 1 << num_bits, num_bits + 1

    for c in chars:
        if c not in dictionary:
            dictionary[c] = dict_size
            dict_size += 1
            to_create.add(c)
        wc = w + c
        if wc in dictionary:
            w = wc
        else:
            produce(w)
            dictionary[wc] = dict_size
            dict_size += 1
            w = c
    if w:
        produce(w)
    write(2, num_bits)
    while True:
        state["val"] <<= 1
        if state["pos"] == 5:
            out.append(_ALPHABET[state["val"]])
            break
        state["pos"] += 1
    result = "".join(out)
    return result + "=" * (-len(result) % 4)


LZ_SAMPLES = [
    "a",
    "hello, hello, hello world",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "Grüße, naïve café — ünïcödé",
    "emoji 🦔🚀 and CJK 日本語 mixed 🦔",
    json.dumps([EVENT] * 20, ensure_ascii=False),
]


@pytest.mark.parametrize("text", LZ_SAMPLES)
def test_lz64_round_trips_through_compress_to_base64(text: str) -> None:
    """decompressFromBase64 returns exactly what compressToBase64 was given, unicode included."""
    assert lz_decompress_from_base64(lz_compress_to_base64(text), max_chars=LIMIT) == text


# outputs of the JavaScript lz-string library's compressToBase64, as other ports test against them
LZ_VECTORS = [
    ("", "Q==="),
    ("a", "IZA="),
    ("hello world", "BYUwNmD2AEDukCcwBMg="),
    ('{"type":"excalidraw","version":2}', "N4IgLgngDgpiBcIYA8DGBDANgSwCYCd0B3EAGhADcZ8BnbAewDsEAmAXyA=="),
    ("中文 OCR 😀 line\nSecond line", "rRynDTAEDyDCBKaLwbgAPbAGwJYDsCmAoAylgMYD2GAJqplkA==="),
]


@pytest.mark.parametrize(("text", "encoded"), LZ_VECTORS)
def test_lz64_known_vectors(text: str, encoded: str) -> None:
    """Known lz-string outputs decode to their text, and the test compressor reproduces them exactly."""
    assert lz_decompress_from_base64(encoded, max_chars=LIMIT) == text
    assert lz_compress_to_base64(text) == encoded


def test_lz64_rejects_bad_characters_and_truncation() -> None:
    """Characters outside the base64 alphabet and a stream cut short are decode errors."""
    with pytest.raises(DecodeError, match="unexpected character"):
        lz_decompress_from_base64("IZ!A", max_chars=LIMIT)
    encoded = lz_compress_to_base64("hello, hello, hello world " * 10)
    with pytest.raises(DecodeError, match="lz64"):
        lz_decompress_from_base64(encoded[: len(encoded) // 2], max_chars=LIMIT)


def test_lz64_output_is_bounded() -> None:
    """Decompressing past max_chars stops with PayloadTooLarge."""
    encoded = lz_compress_to_base64("x" * 100_000)
    assert len(encoded) < 2000
    with pytest.raises(PayloadTooLarge):
        lz_decompress_from_base64(encoded, max_chars=10_000)


# ---------------------------------------------------------------------------------------------------------
# decode_capture_body: encodings
# ---------------------------------------------------------------------------------------------------------


def test_plain_json_body() -> None:
    """An uncompressed JSON body is parsed as it is."""
    assert decode(to_json(PAYLOAD)) == PAYLOAD


def test_gzip_detected_by_magic_bytes() -> None:
    """A gzip body is gunzipped even when nothing declares it."""
    assert decode(gzip.compress(to_json(PAYLOAD))) == PAYLOAD


def test_gzip_declared_by_content_encoding() -> None:
    """Content-Encoding: gzip (what posthog-python sends with gzip=True) is accepted."""
    assert decode(gzip.compress(to_json(PAYLOAD)), content_encoding="gzip") == PAYLOAD


@pytest.mark.parametrize("name", ["gzip", "gzip-js", "GZIP-JS"])
def test_gzip_declared_by_query(name: str) -> None:
    """posthog-js's ?compression=gzip-js (text/plain body) is gunzipped."""
    body = gzip.compress(to_json([EVENT]))
    assert decode(body, {"compression": name}, content_type="text/plain") == [EVENT]


@pytest.mark.parametrize("name", ["base64", "b64"])
def test_base64_compression(name: str) -> None:
    """?compression=base64 decodes base64 JSON, with spaces read back as '+' and padding optional."""
    encoded = base64.b64encode(to_json(PAYLOAD)).rstrip(b"=")
    assert decode(encoded, {"compression": name}) == PAYLOAD


@pytest.mark.parametrize("name", ["lz64", "lz-string"])
def test_lz64_compression_of_the_body(name: str) -> None:
    """?compression=lz64 decodes an LZ-string base64 body, unicode included."""
    body = lz_compress_to_base64(json.dumps(PAYLOAD, ensure_ascii=False)).encode()
    assert decode(body, {"compression": name}, content_type="text/plain") == PAYLOAD


def test_form_data_base64() -> None:
    """A form body's data field in base64 (with '+' turned into ' ' by form encoding) is decoded."""
    payload = {"event": "e", "distinct_id": "d", "properties": {"k": ">>>???"}}
    encoded = base64.b64encode(to_json(payload)).decode()
    assert "+" in encoded or "/" in encoded
    body = ("data=" + encoded.replace("+", " ")).encode()  # a lax client leaving '+' unescaped
    assert decode(body, content_type="application/x-www-form-urlencoded") == payload
    body = urlencode({"data": encoded}).encode()
    assert decode(body, content_type="application/x-www-form-urlencoded; charset=utf-8") == payload


def test_form_data_json_and_lz64_field() -> None:
    """A form data field may be plain JSON, or LZ64 named by the form's own compression field."""
    form = "application/x-www-form-urlencoded"
    assert decode(urlencode({"data": json.dumps(PAYLOAD)}).encode(), content_type=form) == PAYLOAD
    lz = lz_compress_to_base64(json.dumps(PAYLOAD, ensure_ascii=False))
    body = urlencode({"data": lz, "compression": "lz64", "ver": "1.2.3"}).encode()
    assert decode(body, content_type=form) == PAYLOAD


def test_get_data_in_query() -> None:
    """GET /e/?data=<base64> (an empty body) reads the event from the query."""
    encoded = base64.b64encode(to_json(EVENT)).decode()
    assert decode(b"", {"data": encoded, "ver": "1"}, content_type=None) == EVENT
    assert decode(b"", {"data": json.dumps(EVENT)}, content_type=None) == EVENT


def test_bad_gzip_is_a_decode_error() -> None:
    """A corrupt gzip stream, or gzip declared for data without a gzip header, is a 400."""
    corrupt = bytearray(gzip.compress(to_json(PAYLOAD)))
    corrupt[12:20] = b"\xff" * 8
    with pytest.raises(DecodeError, match="Invalid gzip body"):
        decode(bytes(corrupt))
    with pytest.raises(DecodeError, match="no gzip header"):
        decode(to_json(PAYLOAD), {"compression": "gzip-js"})


def test_bad_base64_is_a_decode_error() -> None:
    """Data that is not base64 under ?compression=base64 is a 400 naming base64."""
    with pytest.raises(DecodeError, match="Invalid base64 data") as info:
        decode(b"eyJ!!notbase64", {"compression": "base64"})
    assert info.value.status == 400


def test_bad_json_is_a_decode_error() -> None:
    """A body that is not JSON is a 400 naming JSON, and is not guessed to be base64."""
    with pytest.raises(DecodeError, match="Invalid JSON in request body"):
        decode(b'{"event": ')
    with pytest.raises(DecodeError, match="Invalid JSON in request body"):
        decode(base64.b64encode(to_json(EVENT)))
    with pytest.raises(DecodeError, match="nor is it base64"):
        decode(b"data=not-json-nor-base64!", content_type="application/x-www-form-urlencoded")


def test_empty_body_and_unknown_compression_are_decode_errors() -> None:
    """An empty body and a compression we do not know are 400s."""
    with pytest.raises(DecodeError, match="Empty request body"):
        decode(b"")
    with pytest.raises(DecodeError, match="Unsupported compression 'br'"):
        decode(to_json(EVENT), content_encoding="br")


def test_gzip_bomb_is_bounded() -> None:
    """A small gzip body expanding past the limit is PayloadTooLarge (413), without inflating it all."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = b"".join([compressor.compress(bytes(1 << 20)) for _ in range(32)] + [compressor.flush()])
    assert len(bomb) < 64 * 1024
    with pytest.raises(PayloadTooLarge) as info:
        decode(bomb, content_encoding="gzip")
    assert info.value.status == 413


def test_base64_and_lz64_bombs_are_bounded() -> None:
    """base64 and LZ64 data decoding past the limit are PayloadTooLarge as well."""
    with pytest.raises(PayloadTooLarge):
        decode(base64.b64encode(bytes(4096)), {"compression": "base64"}, limit=1000)
    with pytest.raises(PayloadTooLarge):
        decode(lz_compress_to_base64(" " * 50_000).encode(), {"compression": "lz64"}, limit=1000)


# ---------------------------------------------------------------------------------------------------------
# parse_events: shapes
# ---------------------------------------------------------------------------------------------------------


def test_array_of_events() -> None:
    """A bare JSON array is a batch without an envelope token."""
    batch = parse_events([EVENT, {**EVENT, "event": "second"}], now=NOW)
    assert [e.event for e in batch.events] == ["$pageview", "second"]
    assert batch.token is None and batch.historical_migration is False
    assert all(e.timestamp == NOW for e in batch.events)


def test_envelope_with_token_key() -> None:
    """An envelope's token (or api_key) is the batch's token and every event's."""
    batch = parse_events({"token": TOKEN, "batch": [EVENT], "historical_migration": True}, now=NOW)
    assert batch.token == TOKEN and batch.historical_migration is True
    assert batch.events[0].token == TOKEN


def test_single_event() -> None:
    """A single event object, as docs and curl send to /capture/, is a batch of one."""
    event = {**EVENT, "api_key": TOKEN, "timestamp": "2025-06-15T10:00:00Z"}
    batch = parse_events(event, now=NOW)
    assert batch.token == TOKEN
    (only,) = batch.events
    assert (only.event, only.distinct_id, only.properties) == ("$pageview", "user-1", EVENT["properties"])
    assert only.timestamp == datetime(2025, 6, 15, 10, tzinfo=UTC)


def test_empty_batch_is_rejected() -> None:
    """An envelope with no events, and an empty array, are 400s."""
    for payload in ({"api_key": TOKEN, "batch": []}, []):
        with pytest.raises(DecodeError, match="no events"):
            parse_events(payload, now=NOW)


def test_non_object_payloads_are_rejected() -> None:
    """A JSON scalar, a non-array batch and a non-object event are 400s naming the place."""
    with pytest.raises(DecodeError, match="Expected an event"):
        parse_events("hello", now=NOW)
    with pytest.raises(InvalidEvent, match=r"^batch: expected an array"):
        parse_events({"batch": {"event": "x"}}, now=NOW)
    with pytest.raises(InvalidEvent, match=r"batch\[1\]: expected an object"):
        parse_events([EVENT, 5], now=NOW)


def sdk_message(event: str, distinct_id: str, timestamp: datetime, **properties: Any) -> dict[str, Any]:
    """A message as posthog-python's Client builds it before batching."""
    return {
        "event": event,
        "distinct_id": distinct_id,
        "properties": {**properties, "$lib": "posthog-python", "$lib_version": "7.0.0", "$geoip_disable": True},
        "timestamp": timestamp.isoformat(),
        "uuid": str(uuid.uuid4()),
    }


def test_posthog_python_batch_body() -> None:
    """posthog-python's exact /batch/ body, gzipped, decodes to its events with SDK uuids and skew undone."""
    client_clock = NOW - timedelta(minutes=7)  # the client's clock is 7 minutes slow
    messages = [
        sdk_message("signed up", "42", client_clock - timedelta(seconds=30), plan="pro"),
        sdk_message("$identify", "42", client_clock - timedelta(seconds=10), **{"$set": {"email": "a@b.test"}}),
    ]
    body = {
        "batch": messages,
        "historical_migration": False,
        "sent_at": client_clock.isoformat(),
        "api_key": "phc_abc123",
    }
    payload = decode(gzip.compress(json.dumps(body).encode()), content_encoding="gzip")
    batch = parse_events(payload, now=NOW)
    assert batch.token == "phc_abc123" and batch.historical_migration is False
    first, second = batch.events
    assert first.uuid == messages[0]["uuid"] and second.uuid == messages[1]["uuid"]
    assert first.properties["$lib"] == "posthog-python" and first.properties["plan"] == "pro"
    assert first.timestamp == NOW - timedelta(seconds=30)
    assert second.timestamp == NOW - timedelta(seconds=10)
    assert second.set == {"email": "a@b.test"} and second.set_once is None


class _RecordingSession:
    """Stands in for requests.Session inside posthog.request.post and keeps what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, dict[str, str]]] = []

    def post(self, url: str, data: Any = None, headers: dict[str, str] | None = None, **_: Any) -> Any:
        import requests

        self.sent.append((url, data, headers or {}))
        response = requests.Response()
        response.status_code = 200
        response._content = b'{"status": 1}'
        return response


def test_body_from_the_real_posthog_python_request_module() -> None:
    """A body serialised and gzipped by posthog-python's own batch_post decodes to the same events."""
    request = pytest.importorskip("posthog.request")
    session = _RecordingSession()
    message = sdk_message("clicked", "u-9", datetime.now(UTC), button="ok")
    message["timestamp"] = datetime.now(UTC)  # the SDK's DatetimeSerializer formats it
    request.post("phc_real", "http://127.0.0.1:1", "/batch/", True, session=session, batch=[message])
    ((url, data, headers),) = session.sent
    assert url.endswith("/batch/") and headers["Content-Encoding"] == "gzip"
    payload = decode(data, content_type=headers["Content-Type"], content_encoding=headers["Content-Encoding"])
    now = datetime.now(UTC)
    batch = parse_events(payload, now=now)
    assert batch.token == "phc_real"
    (event,) = batch.events
    assert (event.event, event.distinct_id, event.uuid) == ("clicked", "u-9", message["uuid"])
    assert abs(event.timestamp - now) < timedelta(seconds=5)


# ---------------------------------------------------------------------------------------------------------
# parse_events: fields
# ---------------------------------------------------------------------------------------------------------


def test_clock_skew_is_corrected_with_sent_at() -> None:
    """timestamp − sent_at is added to the server's now, so a client clock an hour fast does not matter."""
    fast = NOW + timedelta(hours=1)
    event = {**EVENT, "timestamp": (fast - timedelta(seconds=5)).isoformat()}
    batch = parse_events({"batch": [event], "sent_at": fast.isoformat()}, now=NOW)
    assert batch.events[0].timestamp == NOW - timedelta(seconds=5)
    # the same via the sent_at argument (the `_` query parameter)
    assert parse_events([event], now=NOW, sent_at=fast).events[0].timestamp == NOW - timedelta(seconds=5)
    # and not at all when the event asks for it
    ignore = {**event, "properties": {"$ignore_sent_at": True}}
    assert parse_events([ignore], now=NOW, sent_at=fast).events[0].timestamp == fast - timedelta(seconds=5)


def test_offset_is_subtracted_from_now() -> None:
    """An event with offset (ms) and no timestamp happened offset milliseconds before receipt."""
    batch = parse_events([{**EVENT, "offset": 1500}], now=NOW)
    assert batch.events[0].timestamp == NOW - timedelta(milliseconds=1500)


def test_timestamps_are_utc_with_microseconds() -> None:
    """Times without a zone are UTC, zoned times are converted, nanosecond digits are cut to microseconds."""
    events = [
        {**EVENT, "timestamp": "2025-01-02T03:04:05.123456789Z"},
        {**EVENT, "timestamp": "2025-01-02 03:04:05"},
        {**EVENT, "timestamp": "2025-01-02T05:04:05.5+02:00"},
    ]
    stamps = [e.timestamp for e in parse_events(events, now=NOW).events]
    assert stamps == [
        datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2025, 1, 2, 3, 4, 5, 500000, tzinfo=UTC),
    ]
    assert all(s.tzinfo is UTC for s in stamps)
    assert parse_events([EVENT], now=NOW.astimezone(timezone(timedelta(hours=3)))).events[0].timestamp.tzinfo is UTC


def test_bad_timestamp_and_offset_name_the_field() -> None:
    """An unparseable timestamp or a non-numeric offset is a 400 naming the event index and field."""
    with pytest.raises(InvalidEvent, match=r"batch\[0\]\.timestamp: not an ISO 8601 time") as info:
        parse_events([{**EVENT, "timestamp": "yesterday"}], now=NOW)
    assert info.value.attr == "batch[0].timestamp"
    with pytest.raises(InvalidEvent, match=r"batch\[0\]\.offset"):
        parse_events([{**EVENT, "offset": "10"}], now=NOW)


def test_missing_event_name_names_the_index() -> None:
    """An event without a name is a 400 naming its position in the batch."""
    with pytest.raises(InvalidEvent, match=r"^batch\[1\]\.event: required$") as info:
        parse_events({"api_key": TOKEN, "batch": [EVENT, {"distinct_id": "x"}]}, now=NOW)
    assert info.value.status == 400 and info.value.attr == "batch[1].event"


def test_distinct_id_from_properties_and_numbers() -> None:
    """distinct_id may sit in properties and may be a number, which is stringified."""
    batch = parse_events(
        [
            {"event": "a", "properties": {"distinct_id": "in-props"}},
            {"event": "b", "distinct_id": 12345},
        ],
        now=NOW,
    )
    assert [e.distinct_id for e in batch.events] == ["in-props", "12345"]


def test_missing_distinct_id_is_rejected() -> None:
    """An event without distinct_id, or with an empty or boolean one, is a 400 naming the field."""
    with pytest.raises(InvalidEvent, match=r"^batch\[0\]\.distinct_id: required$"):
        parse_events([{"event": "a", "properties": {}}], now=NOW)
    with pytest.raises(InvalidEvent, match="must not be empty"):
        parse_events([{"event": "a", "distinct_id": " "}], now=NOW)
    with pytest.raises(InvalidEvent, match="expected a string or a number"):
        parse_events([{"event": "a", "distinct_id": True}], now=NOW)


def test_tokens_from_events_and_properties() -> None:
    """Without an envelope, the token comes from the events' api_key, token or properties.token."""
    events = [
        {**EVENT, "api_key": TOKEN},
        {**EVENT, "properties": {"token": TOKEN}},
        EVENT,
    ]
    batch = parse_events(events, now=NOW)
    assert batch.token == TOKEN
    assert [e.token for e in batch.events] == [TOKEN, TOKEN, TOKEN]


def test_mixed_tokens_are_an_auth_error() -> None:
    """Events for two different tokens in one request are refused with a 401-type error."""
    with pytest.raises(MixedTokens) as info:
        parse_events([{**EVENT, "api_key": "phc_a"}, {**EVENT, "properties": {"token": "phc_b"}}], now=NOW)
    assert info.value.status == 401 and isinstance(info.value, IngestError)
    with pytest.raises(MixedTokens):
        parse_events({"api_key": "phc_a", "batch": [{**EVENT, "token": "phc_b"}]}, now=NOW)


def test_uuids_kept_generated_or_rejected() -> None:
    """A valid uuid is kept (lowercased), a missing one becomes a fresh UUIDv7, an invalid one is a 400."""
    given = str(uuid.uuid4()).upper()
    batch = parse_events([{**EVENT, "uuid": given}, EVENT, EVENT], now=NOW)
    kept, fresh1, fresh2 = (e.uuid for e in batch.events)
    assert kept == given.lower()
    assert uuid.UUID(fresh1).version == 7 and uuid.UUID(fresh2).version == 7 and fresh1 != fresh2
    with pytest.raises(InvalidEvent, match=r"batch\[0\]\.uuid: not a valid UUID"):
        parse_events([{**EVENT, "uuid": "not-a-uuid"}], now=NOW)


def test_set_and_set_once_from_top_level_and_properties() -> None:
    """$set and $set_once are read from properties and the top level, the top level winning per key."""
    event = {
        **EVENT,
        "$set": {"plan": "pro"},
        "properties": {"$set": {"plan": "free", "email": "a@b.test"}, "$set_once": {"first": "x"}},
    }
    (parsed,) = parse_events([event], now=NOW).events
    assert parsed.set == {"plan": "pro", "email": "a@b.test"}
    assert parsed.set_once == {"first": "x"}
    (plain,) = parse_events([EVENT], now=NOW).events
    assert plain.set is None and plain.set_once is None
    with pytest.raises(InvalidEvent, match=r"batch\[0\]\.properties\.\$set: expected an object"):
        parse_events([{**EVENT, "properties": {"$set": "x"}}], now=NOW)


def test_result_types() -> None:
    """parse_events returns a CaptureBatch whose events carry dict properties."""
    batch = parse_events({"batch": [{"event": "e", "distinct_id": "d"}]}, now=NOW)
    assert isinstance(batch, CaptureBatch)
    assert batch.events[0].properties == {}
