"""PostHog's events list (``GET /api/projects/<id>/events/``): parameters in, one page of events out.

Semantics (HTTP spec §4, §6.1):

- ``after`` / ``before`` are exclusive bounds, ISO or relative (``-7d``); ``before`` defaults to now + 5 s,
  ``after`` to unbounded (self-hosted PostHog's behaviour).
- ``orderBy`` ``["-timestamp"]`` (default) sorts newest first; anything else oldest first. Either way ties
  on ``timestamp`` are broken by ``uuid`` in ClickHouse's UUID order, so a page boundary is exact.
- ``next`` repeats the request with ``before`` (newest first) or ``after`` (oldest first) moved to the last
  event's timestamp, plus ``before_uuid`` / ``after_uuid`` naming that event: the next page starts right
  after it, so following ``next`` returns every event once even when thousands share a timestamp.
  Clients that ignore the extra parameter (PostHog semantics) still get a correct exclusive bound.
- ``properties`` filters are PostHog's: ``event``, ``person``, ``element`` and ``hogql`` (the keyset
  connectors' ``timestamp > … OR (timestamp = … AND uuid > …)``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from logpond.hogql.filters import FiltersError, property_condition
from logpond.logs.dates import DateParseError, parse_date
from logpond.query import ast

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 50_000
_EVENT_FIELDS = ("uuid", "event", "distinct_id", "properties", "timestamp", "elements_chain", "person_id")
_PERSON_SUBSET = ("email", "name", "username")


class EventsParamError(Exception):
    """A bad query parameter; ``attr`` names it."""

    def __init__(self, detail: str, attr: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.attr = attr


@dataclass(frozen=True)
class EventsRequest:
    after: dt.datetime | None
    before: dt.datetime
    after_uuid: str | None
    before_uuid: str | None
    descending: bool
    limit: int
    offset: int
    event: str | None
    distinct_id: str | None
    person_id: str | None
    conditions: tuple[ast.Expr, ...]
    include_person: bool
    csv: bool


def _uuid_param(params: Mapping[str, str], name: str) -> str | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise EventsParamError(f"{name} must be a UUID.", name) from None


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise EventsParamError(f"{name} must be an integer.", name) from None


def _date_param(params: Mapping[str, str], name: str, now: dt.datetime) -> dt.datetime | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_date(raw, now=now)
    except DateParseError as exc:
        raise EventsParamError(str(exc), name) from None


def parse_request(params: Mapping[str, str], *, now: dt.datetime, parse_expr: Callable[..., ast.Expr]) -> EventsRequest:
    """Read the query string of an events list request (raises EventsParamError naming the parameter)."""
    order_raw = params.get("orderBy")
    descending = True
    if order_raw:
        try:
            order = orjson.loads(order_raw)
        except orjson.JSONDecodeError:
            raise EventsParamError('orderBy must be a JSON array such as ["-timestamp"].', "orderBy") from None
        if not isinstance(order, list) or not all(isinstance(o, str) for o in order):
            raise EventsParamError('orderBy must be a JSON array such as ["-timestamp"].', "orderBy")
        descending = "-timestamp" in order or not order
    csv = params.get("format") == "csv"
    limit = _int_param(params, "limit", MAX_LIMIT if csv else DEFAULT_LIMIT)
    offset = _int_param(params, "offset", 0)
    if offset < 0 or offset > MAX_OFFSET:
        raise EventsParamError(
            f"offset must be between 0 and {MAX_OFFSET}; page with the next URL or the after/before bounds.",
            "offset",
        )
    before = _date_param(params, "before", now) or now + dt.timedelta(seconds=5)
    conditions: list[ast.Expr] = []
    for i, leaf in enumerate(_property_filters(params.get("properties"))):
        try:
            conditions.append(property_condition(leaf, f"properties__{i}", parse_expr))
        except FiltersError as exc:
            raise EventsParamError(str(exc), exc.attr) from None
    where_raw = params.get("where")
    if where_raw:
        try:
            wheres = orjson.loads(where_raw)
        except orjson.JSONDecodeError:
            raise EventsParamError("where must be a JSON array of HogQL expressions.", "where") from None
        if not isinstance(wheres, list) or not all(isinstance(w, str) for w in wheres):
            raise EventsParamError("where must be a JSON array of HogQL expressions.", "where")
        conditions.extend(parse_expr(w, "where") for w in wheres)
    return EventsRequest(
        after=_date_param(params, "after", now),
        before=before,
        after_uuid=_uuid_param(params, "after_uuid"),
        before_uuid=_uuid_param(params, "before_uuid"),
        descending=descending,
        limit=max(1, min(limit, MAX_LIMIT)),
        offset=offset,
        event=params.get("event") or None,
        distinct_id=params.get("distinct_id") or None,
        person_id=_uuid_param(params, "person_id"),
        conditions=tuple(conditions),
        include_person=params.get("include_person", "").lower() in ("true", "1"),
        csv=csv,
    )


def _property_filters(raw: str | None) -> list[Any]:
    """The filters of a ``properties`` parameter: a JSON list of filters, or one AND/OR group."""
    if not raw:
        return []
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise EventsParamError("Properties are unparsable!", "properties") from None
    if isinstance(doc, dict) and doc.get("type") in ("AND", "OR"):
        return [doc]
    if not isinstance(doc, list):
        raise EventsParamError("properties must be a JSON array of property filters.", "properties")
    return doc


def _bound(column: str, op: str, moment: dt.datetime, tie_uuid: str | None) -> ast.Expr:
    """``timestamp <op> moment``, or with a tie-breaker: past ``(moment, tie_uuid)`` in (timestamp, uuid) order."""
    timestamp = ast.Field(column)
    strictly = ast.Compare(op, timestamp, ast.Constant(moment))  # type: ignore[arg-type]
    if tie_uuid is None:
        return strictly
    tie = ast.And(
        (
            ast.Compare("=", timestamp, ast.Constant(moment)),
            ast.Compare(op, ast.Field("uuid"), ast.Constant(uuid.UUID(tie_uuid))),  # type: ignore[arg-type]
        )
    )
    return ast.Or((strictly, tie))


def build_query(request: EventsRequest) -> ast.Select:
    """One page (plus one row, to know whether there is a next page) of events."""
    conditions: list[ast.Expr | None] = [
        _bound("timestamp", "<", request.before, request.before_uuid),
        _bound("timestamp", ">", request.after, request.after_uuid) if request.after is not None else None,
    ]
    if request.event is not None:
        conditions.append(ast.Compare("=", ast.Field("event"), ast.Constant(request.event)))
    if request.distinct_id is not None:
        conditions.append(ast.Compare("=", ast.Field("distinct_id"), ast.Constant(request.distinct_id)))
    if request.person_id is not None:
        conditions.append(ast.Compare("=", ast.Field("person_id"), ast.Constant(uuid.UUID(request.person_id))))
    conditions.extend(request.conditions)
    direction: Literal["ASC", "DESC"] = "DESC" if request.descending else "ASC"
    return ast.Select(
        select=tuple(ast.Field(f) for f in _EVENT_FIELDS),
        from_=ast.JoinExpr(ast.TableRef("events")),
        where=ast.and_(*conditions),
        order_by=_order(direction, one_person=request.distinct_id is not None or request.person_id is not None),
        limit=request.limit + 1,
        offset=request.offset or None,
    )


def _order(direction: Literal["ASC", "DESC"], *, one_person: bool) -> tuple[ast.OrderExpr, ...]:
    """By (timestamp, uuid). Usually spelled with the hour first, as the table's sorting key, so ClickHouse
    reads the newest (or oldest) hours in order and stops at the limit instead of sorting every match;
    one person's events are few and spread over all hours, and a parallel scan finds them faster."""
    exact = (ast.OrderExpr(ast.Field("timestamp"), direction), ast.OrderExpr(ast.Field("uuid"), direction))
    if one_person:
        return exact
    return (ast.OrderExpr(ast.Call("toStartOfHour", (ast.Field("timestamp"),)), direction), *exact)


def person_query(person_ids: list[str]) -> ast.Select:
    return ast.Select(
        select=(ast.Field("id"), ast.Field("is_identified"), ast.Field("properties")),
        from_=ast.JoinExpr(ast.TableRef("persons")),
        where=ast.Compare("in", ast.Field("id"), ast.Constant([uuid.UUID(p) for p in person_ids])),
    )


def ch_time(text: str) -> dt.datetime:
    """A DateTime64 as the store returns it (``2026-01-01 10:00:00.123456``, UTC)."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def event_timestamp(moment: dt.datetime) -> str:
    """PostHog's events API time: ISO 8601 with ``+00:00`` (microseconds when there are any)."""
    return moment.astimezone(dt.UTC).isoformat()


def person_json(row: list[Any] | None, distinct_id: str) -> dict[str, Any] | None:
    if row is None:
        return None
    _, identified, properties = row
    try:
        props = orjson.loads(properties) if properties else {}
    except orjson.JSONDecodeError:
        props = {}
    return {
        "is_identified": bool(identified),
        "distinct_ids": [distinct_id],
        "properties": {k: props[k] for k in _PERSON_SUBSET if isinstance(props, dict) and k in props},
    }


def properties_json(text: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}
