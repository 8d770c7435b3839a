"""PostHog's events and persons REST APIs, as ETL connectors read them (HTTP spec §4, §6).

- ``GET events/``: one page of events with PostHog's parameters (``logpond.events.listing``) and a ``next``
  URL that walks every event exactly once; ``format=csv`` flattens the same rows.
- ``GET events/<uuid>/``: one event (400 for a malformed id, 404 for an unknown one).
- ``GET events/values/?key=``: recent values of an event property (or event names for ``custom_event``).
- ``GET persons/`` (limit/offset, ``distinct_id``, ``email``, ``search``, ``properties``) and
  ``GET persons/<uuid>/``.

Scopes: ``query:read`` for events (PostHog has no ``event:read``), ``person:read`` for persons. Every read is
built as a query tree and printed with the project's isolation, like every other query in logpond.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response

from logpond.api import errors
from logpond.api.auth import ProjectAccess, project_access
from logpond.api.logs import json_response
from logpond.api.projects import url_with
from logpond.api.query import query_failure
from logpond.events.elements import chain_to_elements
from logpond.events.listing import (
    EventsParamError,
    EventsRequest,
    build_query,
    ch_time,
    event_timestamp,
    parse_request,
    person_json,
    person_query,
    properties_json,
)
from logpond.events.people import PeopleParamError, parse_people_request, people_page
from logpond.hogql.errors import HogQLError
from logpond.hogql.jobs import RateLimited
from logpond.query import ast
from logpond.query.printer import QueryError, print_query
from logpond.query.schema import EVENT_TABLES
from logpond.store.base import QueryResult, StoreError

router = APIRouter(prefix="/api/projects/{project_id}", tags=["events"])


async def _access(request: Request, project_id: str, scope: str) -> ProjectAccess:
    """Authenticate, authorise, and apply PostHog's rate limit of ClickHouse-backed reads to personal keys."""
    access = await project_access(request, project_id, scope)
    if access.principal.key is not None:
        try:
            request.app.state.services.read_rate_limiter.check(access.team_id)
        except RateLimited as exc:
            raise errors.throttled(str(exc), exc.retry_after) from None
    return access


def _run(request: Request, access: ProjectAccess, node: ast.Select) -> QueryResult:
    services = request.app.state.services
    sql = print_query(
        node, team_id=access.project.id, database=services.store.database, limits=services.limits, tables=EVENT_TABLES
    )
    return services.store.execute(sql)  # type: ignore[no-any-return]


def _parse_expr(request: Request) -> Any:
    """HogQL expressions of ``properties`` (``{"type": "hogql"}``) and ``where`` filters."""
    runner = request.app.state.services.hogql_runner

    def parse(text: str, attr: str = "properties") -> ast.Expr:
        try:
            return runner.parse_expr(text)  # type: ignore[no-any-return]
        except HogQLError as exc:
            raise EventsParamError(f"Invalid HogQL expression: {exc}", attr) from None

    return parse


async def _in_store(fn: Any) -> Any:
    """Run a store read off the event loop; its failures answer like the query API's (400 with the
    ClickHouse error's name when the filter caused it, 504 over the time limit)."""
    try:
        return await anyio.to_thread.run_sync(fn)
    except (StoreError, QueryError) as exc:
        if isinstance(exc, QueryError):
            raise errors.validation_error(str(exc), code="hogql_query_error", attr="properties") from None
        failure = query_failure(exc)
        if failure.status == 400:
            failure.attr = "properties"
        raise failure from None


def _event_json(row: list[Any], person: dict[str, Any] | None) -> dict[str, Any]:
    event_uuid, name, distinct_id, properties, timestamp, chain, _ = row
    return {
        "id": event_uuid,
        "distinct_id": distinct_id,
        "properties": properties_json(properties),
        "event": name,
        "timestamp": event_timestamp(ch_time(timestamp)),
        "person": person,
        "elements": chain_to_elements(chain),
        "elements_chain": chain,
    }


def _with_persons(request: Request, access: ProjectAccess, rows: list[list[Any]], include: bool) -> list[Any]:
    persons: dict[str, list[Any]] = {}
    if include and rows:
        ids = sorted({row[6] for row in rows})
        persons = {r[0]: r for r in _run(request, access, person_query(ids)).rows}
    return [_event_json(row, person_json(persons.get(row[6]), row[2]) if include else None) for row in rows]


@router.get("/events", summary="List events (PostHog's events API)")
async def list_events(project_id: str, request: Request) -> Response:
    access = await _access(request, project_id, "query:read")
    services = request.app.state.services
    params = dict(request.query_params)
    try:
        parsed = parse_request(params, now=services.clock(), parse_expr=_parse_expr(request))
    except EventsParamError as exc:
        raise errors.validation_error(exc.detail, attr=exc.attr) from None

    def fetch() -> tuple[list[Any], bool]:
        rows = _run(request, access, build_query(parsed)).rows
        more = len(rows) > parsed.limit
        rows = rows[: parsed.limit]
        return _with_persons(request, access, rows, parsed.include_person), more

    events, more = await _in_store(fetch)
    if parsed.csv:
        return Response(_csv(events), media_type="text/csv")
    next_url = _next_url(request, params, parsed, events[-1]) if more and events else None
    return json_response({"next": next_url, "results": events})


def _next_url(request: Request, params: dict[str, str], parsed: EventsRequest, last: dict[str, Any]) -> str:
    params = {k: v for k, v in params.items() if k != "offset"}
    side = "before" if parsed.descending else "after"
    params[side] = last["timestamp"]
    params[f"{side}_uuid"] = last["id"]
    return url_with(request, params)


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _flatten(inner, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value:
        for i, inner in enumerate(value):
            _flatten(inner, f"{prefix}.{i}", out)
    else:
        out[prefix] = "" if value is None or value == {} or value == [] else value


def _csv(events: list[dict[str, Any]]) -> str:
    """Rows flattened with dotted column names (``properties.$browser``), as PostHog's CSV renderer does."""
    flat = []
    for event in events:
        row: dict[str, Any] = {}
        _flatten({k: v for k, v in event.items() if k != "elements"}, "", row)
        flat.append(row)
    columns = sorted({c for row in flat for c in row})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(flat)
    return buffer.getvalue()


@router.get("/events/values", summary="Values of an event property")
async def event_values(project_id: str, request: Request) -> Response:
    access = await _access(request, project_id, "query:read")
    services = request.app.state.services
    key = request.query_params.get("key")
    if not key:
        raise errors.validation_error("You must provide a key", attr="key")
    search = request.query_params.get("value")
    names = request.query_params.getlist("event_name")
    since = services.clock() - dt.timedelta(days=7)
    conditions: list[ast.Expr | None] = [ast.Compare(">", ast.Field("timestamp"), ast.Constant(since))]
    if key == "custom_event":
        target: ast.Expr = ast.Field("event")
        conditions.append(ast.Not(ast.Call("startsWith", (ast.Field("event"), ast.Constant("$")))))
    else:
        target = ast.Chain(("properties", key))
        conditions.append(ast.Call("isNotNull", (target,)))
        if names:
            conditions.append(ast.Compare("in", ast.Field("event"), ast.Constant(names)))
    if search:
        conditions.append(ast.Compare("ilike", target, ast.Constant(f"%{search}%")))
    node = ast.Select(
        select=(ast.Alias(target, "value"),),
        from_=ast.JoinExpr(ast.TableRef("events")),
        where=ast.and_(*conditions),
        group_by=(ast.Chain(("value",)),),
        order_by=(ast.OrderExpr(ast.Call("count", ()), "DESC"),),
        limit=10,
    )
    result = await _in_store(lambda: _run(request, access, node))
    return json_response({"results": [{"name": row[0]} for row in result.rows], "refreshing": False})


@router.get("/events/{event_id}", summary="Retrieve one event")
async def get_event(project_id: str, event_id: str, request: Request) -> Response:
    access = await _access(request, project_id, "query:read")
    try:
        event_uuid = uuid.UUID(event_id)
    except ValueError:
        raise errors.APIError(400, "Invalid UUID", code="invalid", type="validation_error") from None
    include = request.query_params.get("include_person", "").lower() in ("true", "1")
    node = ast.Select(
        select=tuple(ast.Field(f) for f in ("uuid", "event", "distinct_id", "properties", "timestamp"))
        + (
            ast.Field("elements_chain"),
            ast.Field("person_id"),
        ),
        from_=ast.JoinExpr(ast.TableRef("events")),
        where=ast.Compare("=", ast.Field("uuid"), ast.Constant(event_uuid)),
        limit=1,
    )

    def fetch() -> list[Any]:
        return _with_persons(request, access, _run(request, access, node).rows, include)

    events = await _in_store(fetch)
    if not events:
        raise errors.not_found(f"No events exist for event UUID {event_uuid}")
    return json_response(events[0])


@router.get("/persons", summary="List persons")
async def list_persons(project_id: str, request: Request) -> Response:
    access = await _access(request, project_id, "person:read")
    params = dict(request.query_params)
    try:
        parsed = parse_people_request(params, parse_expr=_parse_expr(request))
    except (PeopleParamError, EventsParamError) as exc:
        raise errors.validation_error(exc.detail, attr=exc.attr) from None
    people, more = await _in_store(lambda: people_page(lambda n: _run(request, access, n), parsed))
    next_url = url_with(request, {**params, "offset": str(parsed.offset + parsed.limit), "limit": str(parsed.limit)})
    previous = None
    if parsed.offset > 0:
        previous = url_with(request, {**params, "offset": str(max(0, parsed.offset - parsed.limit))})
    doc: dict[str, Any] = {"results": people, "next": next_url if more else None, "previous": previous}
    return json_response(doc)


@router.get("/persons/{person_id}", summary="Retrieve one person")
async def get_person(project_id: str, person_id: str, request: Request) -> Response:
    access = await _access(request, project_id, "person:read")
    try:
        person_uuid = uuid.UUID(person_id)
    except ValueError:
        raise errors.validation_error(
            "The ID provided does not look like a personID. If you are using a distinctId, please use "
            "/persons?distinct_id={id} instead.",
            attr="id",
        ) from None
    parsed = parse_people_request({"limit": "1"}, parse_expr=_parse_expr(request), person_id=str(person_uuid))
    people, _ = await _in_store(lambda: people_page(lambda n: _run(request, access, n), parsed))
    if not people:
        raise errors.not_found("Not found.")
    return json_response(people[0])
