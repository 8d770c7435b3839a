"""PostHog event capture: decode a request body and read its events (HTTP spec §5.1, §7).

Two pure steps, for ``/batch/``, ``/capture/``, ``/e/``, ``/i/v0/e/`` and ``/track/``::

    payload = decode_capture_body(body, query=q, content_type=ct, content_encoding=ce,
                                  max_decompressed_bytes=limit)    # the JSON document, decompressed
    batch = parse_events(payload, now=received_at)                  # CaptureBatch of CapturedEvent

Decisions worth knowing:

- **Where the data is.** A form-encoded body (``application/x-www-form-urlencoded``) carries it in its
  ``data`` field (and maybe ``compression``); an empty body with ``?data=`` in the query is a GET-style
  capture; anything else is the body itself.
- **Compression** is named by ``?compression=``, else the form's ``compression`` field, else
  ``Content-Encoding``: ``gzip``/``gzip-js``, ``base64``/``b64``, ``lz64``/``lz-string`` (LZ-string's
  ``compressToBase64``), or nothing (``identity``). Anything else is a 400. Data starting with the gzip
  magic bytes is gunzipped whatever is declared; data declared gzip without them is a 400. Form decoding
  turns ``+`` into a space, so spaces in base64 and LZ64 text are read back as ``+``.
- **Base64 fallback.** Uncompressed form or query ``data`` that is not JSON is tried as base64, as old
  PostHog libraries send it; a raw body that is not JSON is a 400, never guessed at.
- **Bounded output.** gzip (via ``otlp.decode_body``), base64 and LZ64 all stop with PayloadTooLarge (413)
  once the decoded data would exceed ``max_decompressed_bytes``, so a bomb never allocates much more.
- **Payload shapes** (in this order): a JSON array of events; an envelope ``{"batch": [...], "api_key" |
  "token", "historical_migration"?, "sent_at"?}``; a single event object. An empty batch is a 400.
- **Event fields.** ``event`` is a required non-empty string; ``distinct_id`` comes from the top level or
  ``properties.distinct_id`` and may be a string or a number (stringified); ``uuid`` must be canonical
  8-4-4-4-12 hex (kept, lowercased) or absent (a UUIDv7 is generated); ``$set``/``$set_once`` are read
  from ``properties`` and the top level (the top level wins per key).
- **Timestamps**, as PostHog's ingestion computes them: with ``timestamp`` and a ``sent_at`` (envelope,
  else the ``sent_at`` argument, e.g. the ``_`` query parameter): ``now + (timestamp - sent_at)`` to undo
  the sender's clock skew, unless ``properties.$ignore_sent_at``; with ``timestamp`` alone: that time;
  with ``offset`` (ms) alone: ``now - offset``; otherwise ``now``. A time without a zone is UTC; results
  are timezone-aware UTC with microsecond precision.
- **Tokens** come from the envelope (``api_key`` or ``token``), else each event's ``api_key``, ``token``
  or ``properties.token``. Different tokens in one request are a MixedTokens error (401).
- Every error names the failing field, e.g. ``batch[3].event: required``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, ClassVar, Final
from urllib.parse import parse_qsl

import orjson

from logpond.ingest.errors import DecodeError, IngestError, PayloadTooLarge
from logpond.ingest.otlp import decode_body
from logpond.ingest.uuid7 import uuid7_batch

__all__ = [
    "CaptureBatch",
    "CapturedEvent",
    "InvalidEvent",
    "MixedTokens",
    "decode_capture_body",
    "lz_decompress_from_base64",
    "parse_events",
]


class InvalidEvent(DecodeError):
    """The payload decoded but an event in it is unusable; ``attr`` names the field, e.g. ``batch[2].event``."""

    def __init__(self, attr: str, reason: str) -> None:
        super().__init__(f"{attr}: {reason}")
        self.attr = attr
        self.field_reason = reason

    def __reduce__(self) -> tuple[type[InvalidEvent], tuple[str, str]]:
        # rebuilt from its two parts when it crosses from a decode worker process
        return (InvalidEvent, (self.attr, self.field_reason))


class MixedTokens(IngestError):
    """One request carries events for different project tokens."""

    status: ClassVar[int] = 401


@dataclass(frozen=True, slots=True)
class CapturedEvent:
    """One event as sent, with its uuid, distinct id and timestamp resolved."""

    uuid: str
    event: str
    distinct_id: str
    properties: dict[str, Any]
    timestamp: datetime
    token: str | None
    set: dict[str, Any] | None
    set_once: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class CaptureBatch:
    """The events of one capture request and the single project token they were sent with (if any)."""

    token: str | None
    events: list[CapturedEvent]
    historical_migration: bool


# ---------------------------------------------------------------------------------------------------------
# 1. Body: where the data is, and how it is compressed
# ---------------------------------------------------------------------------------------------------------


class _Compression(Enum):
    NONE = "none"
    GZIP = "gzip"
    BASE64 = "base64"
    LZ64 = "lz64"


_COMPRESSIONS: Final[dict[str, _Compression]] = {
    "": _Compression.NONE,
    "identity": _Compression.NONE,
    "gzip": _Compression.GZIP,
    "gzip-js": _Compression.GZIP,
    "base64": _Compression.BASE64,
    "b64": _Compression.BASE64,
    "lz64": _Compression.LZ64,
    "lz-string": _Compression.LZ64,
}
_GZIP_MAGIC: Final[bytes] = b"\x1f\x8b"
_FORM_TYPE: Final[str] = "application/x-www-form-urlencoded"


def decode_capture_body(
    body: bytes,
    *,
    query: Mapping[str, str],
    content_type: str | None,
    content_encoding: str | None,
    max_decompressed_bytes: int,
) -> Any:
    """Return the JSON payload of a capture request (see the module docstring for the rules).

    Raises DecodeError (400) for undecodable data, naming what failed, and PayloadTooLarge (413) when the
    decoded data would exceed ``max_decompressed_bytes``.
    """
    declared = query.get("compression") or None
    is_text = True  # form or query data: text that may be base64 or LZ64
    if content_type is not None and content_type.split(";")[0].strip().lower() == _FORM_TYPE and body:
        form = _parse_form(body)
        data = form.get("data", "").encode()
        declared = declared or form.get("compression") or None
        where = "form field 'data'"
    elif not body and "data" in query:
        data = query["data"].encode()
        where = "query parameter 'data'"
    else:
        data = body
        is_text = False
        where = "request body"
    if not data:
        raise DecodeError(f"Empty {where}")
    compression = _compression(declared or content_encoding)
    raw = _decompress(data, compression, max_decompressed_bytes)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        json_reason = _orjson_reason(exc)
    if is_text and compression is _Compression.NONE:
        try:
            return orjson.loads(_b64decode(raw, max_decompressed_bytes))
        except (DecodeError, orjson.JSONDecodeError):
            raise DecodeError(f"Invalid JSON in {where}: {json_reason} (nor is it base64 JSON)") from None
    raise DecodeError(f"Invalid JSON in {where}: {json_reason}")


def _parse_form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise DecodeError("Invalid form body: not ASCII text") from None
    # the last value of a repeated field wins, like a dict of parse_qsl's pairs
    return dict(parse_qsl(text, keep_blank_values=True))


def _compression(name: str | None) -> _Compression:
    key = (name or "").strip().lower()
    try:
        return _COMPRESSIONS[key]
    except KeyError:
        raise DecodeError(f"Unsupported compression {name!r}") from None


def _decompress(data: bytes, compression: _Compression, limit: int) -> bytes:
    if data[:2] == _GZIP_MAGIC:
        return decode_body(data, max_decompressed_bytes=limit)
    if compression is _Compression.GZIP:
        raise DecodeError("Invalid gzip body: gzip compression declared but the data has no gzip header")
    if compression is _Compression.BASE64:
        decoded = _b64decode(data, limit)
        # old clients base64-encode gzip data too
        return decode_body(decoded, max_decompressed_bytes=limit)
    if compression is _Compression.LZ64:
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise DecodeError("Invalid lz64 data: not ASCII text") from None
        return lz_decompress_from_base64(text, max_chars=limit).encode()
    return decode_body(data, max_decompressed_bytes=limit)


_BASE64_BLANKS: Final[re.Pattern[bytes]] = re.compile(rb"[\t\r\n]")


def _b64decode(data: bytes, limit: int) -> bytes:
    # form decoding turned '+' into ' '; line breaks are allowed; padding may be missing
    text = _BASE64_BLANKS.sub(b"", data).replace(b" ", b"+").rstrip(b"=")
    if len(text) % 4 == 1:
        raise DecodeError("Invalid base64 data: wrong length")
    if len(text) // 4 * 3 > limit:
        raise PayloadTooLarge(f"Request body is larger than {limit} bytes after decompression")
    try:
        return base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        raise DecodeError(f"Invalid base64 data: {exc}") from None


def _orjson_reason(exc: orjson.JSONDecodeError) -> str:
    message = str(exc)
    if "not valid UTF-8" in message:
        return "not UTF-8 text"
    return message


# ---------------------------------------------------------------------------------------------------------
# 2. LZ-string decompressFromBase64 (pieroxy/lz-string 1.4, as posthog-js's lz64 compression sends it)
# ---------------------------------------------------------------------------------------------------------

_LZ_ALPHABET: Final[str] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_LZ_VALUES: Final[dict[str, int]] = {char: index for index, char in enumerate(_LZ_ALPHABET)}


def lz_decompress_from_base64(text: str, *, max_chars: int) -> str:
    """Return LZ-string's ``decompressFromBase64(text)``; DecodeError on bad input, PayloadTooLarge past ``max_chars``.

    LZ-string works on UTF-16 code units (JavaScript strings), so the output is assembled as code units
    and surrogate pairs are joined at the end; ``max_chars`` bounds the code units produced.
    """
    try:
        values = [_LZ_VALUES[char] for char in text]
    except KeyError as exc:
        raise DecodeError(f"Invalid lz64 data: unexpected character {exc.args[0]!r}") from None
    if not values:
        raise DecodeError("Invalid lz64 data: empty")
    reader = _BitReader(values)

    def literal(bits: int) -> str:
        return chr(reader.read(bits))

    dictionary: list[str] = ["", "", "", ""]  # codes 0, 1, 2 are commands, not entries
    enlarge_in = 4
    num_bits = 3
    first = reader.read(2)
    if first == 2:
        return ""
    if first not in (0, 1):
        raise DecodeError("Invalid lz64 data: bad first code")
    w = literal(8 if first == 0 else 16)
    dictionary[3] = w
    result = [w]
    produced = 1
    while True:
        if reader.exhausted:
            raise DecodeError("Invalid lz64 data: truncated stream")
        code = reader.read(num_bits)
        if code == 2:
            break
        if code in (0, 1):
            dictionary.append(literal(8 if code == 0 else 16))
            code = len(dictionary) - 1
            enlarge_in -= 1
            if enlarge_in == 0:
                enlarge_in = 1 << num_bits
                num_bits += 1
        if code < len(dictionary):
            entry = dictionary[code]
        elif code == len(dictionary):
            entry = w + w[0]
        else:
            raise DecodeError("Invalid lz64 data: reference to an unknown dictionary entry")
        produced += len(entry)
        if produced > max_chars:
            raise PayloadTooLarge(f"Request body is larger than {max_chars} bytes after decompression")
        result.append(entry)
        dictionary.append(w + entry[0])
        enlarge_in -= 1
        w = entry
        if enlarge_in == 0:
            enlarge_in = 1 << num_bits
            num_bits += 1
    try:
        return "".join(result).encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeError:
        raise DecodeError("Invalid lz64 data: not valid UTF-16 text") from None


class _BitReader:
    """Reads LZ-string's bit stream: 6 bits per base64 character, most significant first."""

    __slots__ = ("_values", "_index", "_position", "_value")

    def __init__(self, values: list[int]) -> None:
        self._values = values
        self._index = 1
        self._position = 32
        self._value = values[0]

    @property
    def exhausted(self) -> bool:
        return self._index > len(self._values)

    def read(self, count: int) -> int:
        """Read ``count`` bits as a number, least significant bit first (beyond the input: zeros)."""
        bits = 0
        for shift in range(count):
            if self._value & self._position:
                bits |= 1 << shift
            self._position >>= 1
            if self._position == 0:
                self._position = 32
                self._value = self._values[self._index] if self._index < len(self._values) else 0
                self._index += 1
        return bits


# ---------------------------------------------------------------------------------------------------------
# 3. Events
# ---------------------------------------------------------------------------------------------------------

_UUID: Final[re.Pattern[str]] = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def parse_events(payload: Any, *, now: datetime, sent_at: datetime | None = None) -> CaptureBatch:
    """Return the events of a decoded capture payload, received at ``now`` (timezone-aware).

    ``sent_at`` is the sender's clock at sending time when it came outside the payload (the ``_`` query
    parameter); an envelope's own ``sent_at`` wins. Raises InvalidEvent (400) naming the failing field,
    DecodeError (400) for an unknown shape or an empty batch, and MixedTokens (401).
    """
    now = now.astimezone(UTC)
    envelope: dict[str, Any] = {}
    if isinstance(payload, list):
        raw_events: list[Any] = payload
    elif isinstance(payload, dict) and "batch" in payload:
        envelope = payload
        raw_events = payload["batch"]
        if not isinstance(raw_events, list):
            raise InvalidEvent("batch", f"expected an array, got {_type_name(raw_events)}")
    elif isinstance(payload, dict):
        raw_events = [payload]
    else:
        raise DecodeError(f"Expected an event, an array of events or a batch object, got {_type_name(payload)}")
    if not raw_events:
        raise DecodeError("The batch has no events")

    envelope_token = _token(envelope, "")
    historical = envelope.get("historical_migration")
    if historical is not None and not isinstance(historical, bool):
        raise InvalidEvent("historical_migration", f"expected a boolean, got {_type_name(historical)}")
    if envelope.get("sent_at") is not None:
        sent_at = _parse_time(envelope["sent_at"], "sent_at")

    tokens = {envelope_token} if envelope_token is not None else set()
    fresh_ids = iter(uuid7_batch(sum(1 for e in raw_events if isinstance(e, dict) and e.get("uuid") is None)))
    events: list[CapturedEvent] = []
    for index, raw in enumerate(raw_events):
        where = f"batch[{index}]"
        if not isinstance(raw, dict):
            raise InvalidEvent(where, f"expected an object, got {_type_name(raw)}")
        event = _parse_event(raw, where, now=now, sent_at=sent_at, fresh_ids=fresh_ids, default_token=envelope_token)
        if event.token is not None:
            tokens.add(event.token)
        events.append(event)
    if len(tokens) > 1:
        raise MixedTokens("The request mixes events for different project tokens")
    token = next(iter(tokens), None)
    if token is not None:
        events = [e if e.token == token else _with_token(e, token) for e in events]
    return CaptureBatch(token=token, events=events, historical_migration=bool(historical))


def _parse_event(
    raw: dict[str, Any],
    where: str,
    *,
    now: datetime,
    sent_at: datetime | None,
    fresh_ids: Iterator[str],
    default_token: str | None = None,
) -> CapturedEvent:
    name = raw.get("event")
    if name is None or name == "":
        raise InvalidEvent(f"{where}.event", "required")
    if not isinstance(name, str):
        raise InvalidEvent(f"{where}.event", f"expected a string, got {_type_name(name)}")

    properties = raw.get("properties")
    if properties is None:
        properties = {}
    elif not isinstance(properties, dict):
        raise InvalidEvent(f"{where}.properties", f"expected an object, got {_type_name(properties)}")

    distinct_id = _distinct_id(raw, properties, where)
    token = _token(raw, where) or _property_token(properties, where) or default_token

    raw_uuid = raw.get("uuid")
    if raw_uuid is None:
        event_uuid: str = next(fresh_ids)
    elif isinstance(raw_uuid, str) and _UUID.fullmatch(raw_uuid):
        event_uuid = raw_uuid.lower()
    else:
        raise InvalidEvent(f"{where}.uuid", f"not a valid UUID: {raw_uuid!r}")

    return CapturedEvent(
        uuid=event_uuid,
        event=name,
        distinct_id=distinct_id,
        properties=properties,
        timestamp=_timestamp(raw, properties, where, now=now, sent_at=sent_at),
        token=token,
        set=_person_properties(raw, properties, "$set", where),
        set_once=_person_properties(raw, properties, "$set_once", where),
    )


def _with_token(event: CapturedEvent, token: str) -> CapturedEvent:
    return CapturedEvent(
        uuid=event.uuid,
        event=event.event,
        distinct_id=event.distinct_id,
        properties=event.properties,
        timestamp=event.timestamp,
        token=token,
        set=event.set,
        set_once=event.set_once,
    )


def _distinct_id(raw: dict[str, Any], properties: dict[str, Any], where: str) -> str:
    field = f"{where}.distinct_id"
    value = raw.get("distinct_id")
    if value is None:
        value = properties.get("distinct_id")
        field = f"{where}.properties.distinct_id"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        if value is None:
            raise InvalidEvent(f"{where}.distinct_id", "required")
        raise InvalidEvent(field, f"expected a string or a number, got {_type_name(value)}")
    text = value if isinstance(value, str) else str(value)
    if not text.strip():
        raise InvalidEvent(field, "must not be empty")
    return text


def _token(obj: dict[str, Any], where: str) -> str | None:
    for key in ("api_key", "token"):
        value = obj.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise InvalidEvent(f"{where}.{key}" if where else key, f"expected a string, got {_type_name(value)}")
        return value
    return None


def _property_token(properties: dict[str, Any], where: str) -> str | None:
    value = properties.get("token")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidEvent(f"{where}.properties.token", f"expected a string, got {_type_name(value)}")
    return value


def _timestamp(
    raw: dict[str, Any], properties: dict[str, Any], where: str, *, now: datetime, sent_at: datetime | None
) -> datetime:
    try:
        if raw.get("timestamp") is not None:
            timestamp = _parse_time(raw["timestamp"], f"{where}.timestamp")
            if sent_at is None or properties.get("$ignore_sent_at"):
                return timestamp
            return now + (timestamp - sent_at)
        offset = raw.get("offset")
        if offset is not None:
            if isinstance(offset, bool) or not isinstance(offset, int | float):
                raise InvalidEvent(f"{where}.offset", f"expected milliseconds, got {_type_name(offset)}")
            return now - timedelta(milliseconds=offset)
    except OverflowError:
        raise InvalidEvent(f"{where}.timestamp", "out of range") from None
    return now


def _parse_time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidEvent(field, f"expected an ISO 8601 string, got {_type_name(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(field, f"not an ISO 8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidEvent(field, f"out of range: {value!r}") from None


def _person_properties(raw: dict[str, Any], properties: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
    merged: dict[str, Any] | None = None
    for source, field in ((properties, f"{where}.properties.{key}"), (raw, f"{where}.{key}")):
        value = source.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise InvalidEvent(field, f"expected an object, got {_type_name(value)}")
        merged = {**merged, **value} if merged is not None else dict(value)
    return merged


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
