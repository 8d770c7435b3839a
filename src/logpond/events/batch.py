"""The events of one capture request, as the writer queues them: columns plus the person work they need.

``decode_capture_request`` runs at request time (to answer 400/413 with the field that failed) and again
when the write-ahead log is replayed after a crash: the WAL keeps the request as received (``wal_payload``)
so a replay reads exactly what was acknowledged. Events without a client ``uuid`` get a fresh one each
time; that is harmless because an acknowledged batch that was never inserted has never been read, and a
batch whose insert was in flight is deduplicated by the store on its insert token.

Person work is not done here: it depends on every earlier event of the project, so the writer does it,
in WAL order (``logpond.events.persons``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from logpond.events.elements import elements_chain_from_properties
from logpond.ingest.capture import CapturedEvent, decode_capture_body, parse_events

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICRO = dt.timedelta(microseconds=1)

# events whose person handling goes beyond "find or create the person of this distinct id"
IDENTIFY = "$identify"
CREATE_ALIAS = "$create_alias"
MERGE_DANGEROUSLY = "$merge_dangerously"
# sent with $process_person_profile: false, these make no sense and are dropped, as PostHog does
_PERSON_EVENTS = frozenset({IDENTIFY, CREATE_ALIAS, MERGE_DANGEROUSLY, "$groupidentify"})
_PERSON_PROPERTY_KEYS = ("$set", "$set_once", "$unset")
_NO_INITIAL_PROPERTIES = frozenset({"$snapshot", "$performance_event"})
# event properties a person remembers: the first value as $initial_<name>, and the value while it has none
_INITIAL_KEYS = frozenset(
    [
        "$app_build",
        "$app_name",
        "$app_namespace",
        "$app_version",
        "$browser",
        "$browser_version",
        "$device_type",
        "$current_url",
        "$pathname",
        "$os",
        "$os_version",
        "$referring_domain",
        "$referrer",
        "$screen_height",
        "$screen_width",
        "$viewport_height",
        "$viewport_width",
        "$raw_user_agent",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_content",
        "utm_name",
        "utm_term",
        "gclid",
        "gad_source",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "fbclid",
        "msclkid",
        "twclid",
        "li_fat_id",
        "mc_cid",
        "igshid",
        "ttclid",
        "rdt_cid",
        "irclid",
        "_kx",
        "epik",
        "qclid",
        "sccid",
    ]
)
_INITIAL_NAMES = {key: "$initial_" + key.removeprefix("$") for key in _INITIAL_KEYS}
_ELEMENT_KEYS = frozenset({"$elements", "$elements_chain"})
_SERVER_SKIPPED = frozenset({"$os", "$os_version"})


class PersonUpdate(NamedTuple):
    """What one event asks of its person: property changes, a merge with another distinct id, or none.

    A named tuple, not a dataclass: batches cross from the decode worker process by pickle, and tuples
    unpickle several times faster.
    """

    row: int
    set: dict[str, Any] | None = None
    set_once: dict[str, Any] | None = None
    unset: list[str] | None = None
    set_if_missing: dict[str, Any] | None = None  # where the person came from: never overwrites
    other_distinct_id: str | None = None  # $identify's $anon_distinct_id, $create_alias's alias
    merge_kind: str | None = None  # IDENTIFY, CREATE_ALIAS or MERGE_DANGEROUSLY


@dataclass(slots=True)
class EventBatch:
    """Columns of the events of one request (or several, once the writer concatenates them)."""

    team_id: int
    received_us: int
    uuids: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    distinct_ids: list[str] = field(default_factory=list)
    properties: list[str] = field(default_factory=list)  # JSON text
    timestamps: list[int] = field(default_factory=list)  # microseconds since the epoch, UTC
    elements_chains: list[str] = field(default_factory=list)
    personless: set[int] = field(default_factory=set)  # rows sent with $process_person_profile: false
    updates: list[PersonUpdate] = field(default_factory=list)

    @property
    def num_rows(self) -> int:
        return len(self.uuids)

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled as its fields in order: a slots dataclass would restore field by field, far slower
        return (
            EventBatch,
            (
                self.team_id,
                self.received_us,
                self.uuids,
                self.events,
                self.distinct_ids,
                self.properties,
                self.timestamps,
                self.elements_chains,
                self.personless,
                self.updates,
            ),
        )


def wal_payload(body: bytes, query: Mapping[str, str], content_type: str | None, content_encoding: str | None) -> bytes:
    """The request as received, for the write-ahead log: one JSON header line, then the body bytes."""
    header = {"query": dict(query), "content_type": content_type, "content_encoding": content_encoding}
    return orjson.dumps(header) + b"\n" + body


def decode_wal_payload(payload: bytes) -> tuple[bytes, dict[str, str], str | None, str | None]:
    header, _, body = payload.partition(b"\n")
    doc = orjson.loads(header)
    return body, doc["query"], doc["content_type"], doc["content_encoding"]


def sent_at_from_query(query: Mapping[str, str]) -> dt.datetime | None:
    """posthog-js sends its clock as ``_`` (milliseconds since the epoch) in the query string."""
    raw = query.get("_")
    if raw is None or not raw.isdigit() or len(raw) > 16:
        return None
    return _EPOCH + dt.timedelta(milliseconds=int(raw))


def decode_capture_request(
    body: bytes,
    *,
    query: Mapping[str, str],
    content_type: str | None,
    content_encoding: str | None,
    received_ns: int,
    max_decompressed_bytes: int,
) -> tuple[str | None, list[CapturedEvent]]:
    """Decode and validate one capture request: its project token and its events (raises IngestError)."""
    payload = decode_capture_body(
        body,
        query=query,
        content_type=content_type,
        content_encoding=content_encoding,
        max_decompressed_bytes=max_decompressed_bytes,
    )
    now = _EPOCH + dt.timedelta(microseconds=received_ns // 1000)
    batch = parse_events(payload, now=now, sent_at=sent_at_from_query(query))
    return batch.token, batch.events


def decode_capture_batch(
    body: bytes,
    query: dict[str, str],
    content_type: str | None,
    content_encoding: str | None,
    received_ns: int,
    max_decompressed_bytes: int,
) -> tuple[str | None, EventBatch]:
    """A request's token and its events' columns, for any project (``team_id`` is set once the token is
    known). Runs in a decode worker process when the server has one; the result pickles cheaply."""
    token, events = decode_capture_request(
        body,
        query=query,
        content_type=content_type,
        content_encoding=content_encoding,
        received_ns=received_ns,
        max_decompressed_bytes=max_decompressed_bytes,
    )
    return token, event_batch(0, events, received_ns)


def event_batch(team_id: int, events: list[CapturedEvent], received_ns: int) -> EventBatch:
    """Columns and person work of validated events for project ``team_id``."""
    out = EventBatch(team_id=team_id, received_us=received_ns // 1000)
    for event in events:
        properties = event.properties
        personless = properties.get("$process_person_profile") is False
        if personless and event.event in _PERSON_EVENTS:
            continue
        row = out.num_rows
        out.uuids.append(event.uuid)
        out.events.append(event.event)
        out.distinct_ids.append(event.distinct_id)
        out.timestamps.append((event.timestamp - _EPOCH) // _MICRO)
        out.elements_chains.append(elements_chain_from_properties(properties))
        if "$elements" in properties or "$elements_chain" in properties:
            # stored as the elements_chain column, as PostHog does, not twice
            properties = {k: v for k, v in properties.items() if k not in _ELEMENT_KEYS}
        if personless:
            if any(k in properties for k in _PERSON_PROPERTY_KEYS):
                properties = {k: v for k, v in properties.items() if k not in _PERSON_PROPERTY_KEYS}
        else:
            # the top-level $set / $set_once (merged with the properties' ones) is what the event stores
            if event.set is not None and properties.get("$set") != event.set:
                properties = {**properties, "$set": event.set}
            if event.set_once is not None and properties.get("$set_once") != event.set_once:
                properties = {**properties, "$set_once": event.set_once}
        out.properties.append(orjson.dumps(properties, option=orjson.OPT_NON_STR_KEYS).decode())
        if personless:
            out.personless.add(row)
            continue
        update = _person_update(row, event, properties)
        if update is not None:
            out.updates.append(update)
    return out


def _person_update(row: int, event: CapturedEvent, properties: dict[str, Any]) -> PersonUpdate | None:
    unset = properties.get("$unset")
    unset_keys = [k for k in unset if isinstance(k, str)] if isinstance(unset, list | dict) else None
    other: str | None = None
    kind: str | None = None
    if event.event == IDENTIFY and "$anon_distinct_id" in properties:
        other, kind = _text(properties["$anon_distinct_id"]), IDENTIFY
    elif event.event in (CREATE_ALIAS, MERGE_DANGEROUSLY):
        other, kind = _text(properties.get("alias")), event.event
    set_once, if_missing = event.set_once, None
    if event.event not in _NO_INITIAL_PROPERTIES:
        set_once, if_missing = _initial_properties(properties, set_once)
    if other is None and event.set is None and set_once is None and if_missing is None and not unset_keys:
        return None
    return PersonUpdate(
        row=row,
        set=event.set,
        set_once=set_once,
        unset=unset_keys or None,
        set_if_missing=if_missing,
        other_distinct_id=other,
        merge_kind=kind if other is not None else None,
    )


def _initial_properties(
    properties: dict[str, Any], set_once: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``$set_once`` plus ``$initial_<key>`` of the event's browser, device and campaign properties, and
    those properties themselves as values the person takes only while it has none."""
    server = properties.get("$is_server") is True
    initial: dict[str, Any] = {}
    current: dict[str, Any] = {}
    for key in _INITIAL_KEYS.intersection(properties):
        if server and key in _SERVER_SKIPPED:
            continue
        value = properties[key]
        current[key] = value
        if value is not None:
            initial[_INITIAL_NAMES[key]] = value
    if "$initial_os" not in initial and properties.get("$os_name") is not None and not server:
        initial["$initial_os"] = properties["$os_name"]
    if not initial and not current:
        return set_once, None
    merged_once = {**initial, **(set_once or {})}
    return merged_once or None, current or None


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None
