"""Log alerts under ``/api/projects/<id>/logs/alerts/`` (logs spec §2.2, §5).

Reads need ``logs:read``, changes ``logs:write``. The rules and what a change does live in
``logpond.alerts.rules``; the scheduler that checks alerts and notifies is ``logpond.alerts.scheduler``.
"""

from __future__ import annotations

import uuid
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response

from logpond.alerts.destinations import KINDS, SECRET_FIELDS, DestinationError, parse_destination, public_config
from logpond.alerts.rules import (
    RuleError,
    parse_alert,
    parse_filters_field,
    plan_create,
    plan_reset,
    plan_update,
    regex_patterns,
    stored_filters,
)
from logpond.alerts.scheduler import delivery_settings
from logpond.alerts.simulate import SimulateError, parse_request, simulate
from logpond.alerts.timeline import SPAN, state_timeline
from logpond.api import errors
from logpond.api.auth import ProjectAccess, project_access
from logpond.api.logs import json_body, json_response, run_in_store, store_failure
from logpond.api.projects import page_bounds, page_doc, user_basic
from logpond.logs.aggregates import LogCounter
from logpond.logs.dates import iso
from logpond.logs.filters import FilterError, filter_conditions
from logpond.meta import AlertLimitError, LogsAlert
from logpond.query.ast import Constant, Select, call
from logpond.store.base import StoreError

router = APIRouter(prefix="/api/projects/{project_id}/logs/alerts", tags=["alerts"])

EVENT_KINDS = ("check", "reset", "enable", "disable", "snooze", "unsnooze", "threshold_change", "broken_config")


def _ts(value: Any) -> str | None:
    return iso(value) if value is not None else None


def _rule_error(exc: RuleError) -> errors.APIError:
    return errors.validation_error(exc.detail, attr=exc.attr)


def _alerts_json(services: Any, alerts: list[LogsAlert]) -> list[dict[str, Any]]:
    """The API form of ``alerts``, with their destination types, creators and last day's timeline."""
    meta = services.meta
    now = services.clock()
    ids = [alert.id for alert in alerts]
    history = meta.alerts.events_since(ids, now - SPAN)
    destinations = meta.alerts.destinations(ids)
    users: dict[int, Any] = {}
    out = []
    for alert in alerts:
        creator = None
        if alert.created_by_id is not None:
            if alert.created_by_id not in users:
                users[alert.created_by_id] = meta.get_user(alert.created_by_id)
            user = users[alert.created_by_id]
            if user is not None:
                creator = user_basic(user)
        types = sorted({d.destination_type for d in destinations[alert.id]})
        out.append(
            {
                "id": alert.id,
                "name": alert.name,
                "enabled": alert.enabled,
                "filters": alert.filters,
                "threshold_count": alert.threshold_count,
                "threshold_operator": alert.threshold_operator,
                "window_minutes": alert.window_minutes,
                "check_interval_minutes": alert.check_interval_minutes,
                "evaluation_periods": alert.evaluation_periods,
                "datapoints_to_alarm": alert.datapoints_to_alarm,
                "cooldown_minutes": alert.cooldown_minutes,
                "snooze_until": _ts(alert.snooze_until),
                "schedule_restriction": alert.schedule_restriction,
                "state": alert.state,
                "next_check_at": _ts(alert.next_check_at),
                "last_notified_at": _ts(alert.last_notified_at),
                "last_checked_at": _ts(alert.last_checked_at),
                "first_enabled_at": _ts(alert.first_enabled_at),
                "consecutive_failures": alert.consecutive_failures,
                "last_error_message": alert.last_error_message,
                "last_delivery_error": alert.last_delivery_error,
                "last_delivery_error_at": _ts(alert.last_delivery_error_at),
                "destination_types": types,
                "state_timeline": state_timeline(alert, history[alert.id], now=now),
                "created_at": _ts(alert.created_at),
                "created_by": creator,
                "updated_at": _ts(alert.updated_at),
            }
        )
    return out


async def _check_filters(request: Request, access: ProjectAccess, values: dict[str, Any]) -> None:
    """Refuse filters the check query could not run: a date that does not parse, a regular expression RE2
    does not compile (the store would say so only once a log reaches that condition)."""
    filters = values.get("filters")
    if not filters:
        return
    services = request.app.state.services
    try:
        filter_conditions(stored_filters(filters), include_time=False)
    except FilterError as exc:
        raise errors.validation_error(exc.detail, attr=f"filters__{exc.attr}") from None
    patterns = regex_patterns(filters)
    if not patterns:
        return
    select = Select(select=tuple(call("match", Constant(""), Constant(p)) for p in patterns))
    try:
        await anyio.to_thread.run_sync(lambda: services.run_query(select, team_id=access.team_id))
    except StoreError as exc:
        if exc.code == "CANNOT_COMPILE_REGEXP":
            raise errors.validation_error(
                "Invalid regular expression in a regex filter (RE2 syntax).", attr="filters__filterGroup"
            ) from None
        raise store_failure(exc) from exc


async def _respond(request: Request, alert: LogsAlert | None, status: int = 200) -> Response:
    if alert is None:
        raise errors.not_found()
    services = request.app.state.services
    docs = await anyio.to_thread.run_sync(_alerts_json, services, [alert])
    return json_response(docs[0], status)


@router.get("", summary="List log alerts")
async def list_alerts(project_id: str, request: Request) -> Response:
    access = await project_access(request, project_id, "logs:read")
    services = request.app.state.services
    limit, offset = page_bounds(request)
    created_by = request.query_params.get("created_by") or None
    if created_by is not None:
        try:
            created_by = str(uuid.UUID(created_by))
        except ValueError:
            raise errors.validation_error("Must be a valid UUID.", attr="created_by") from None

    def page() -> dict[str, Any]:
        total, alerts = services.meta.alerts.page(
            access.team_id, created_by_uuid=created_by, limit=limit, offset=offset
        )
        return page_doc(request, total, limit, offset, _alerts_json(services, alerts))

    return json_response(await anyio.to_thread.run_sync(page))


@router.post("", summary="Create a log alert")
async def create_alert(project_id: str, request: Request) -> Response:
    access = await project_access(request, project_id, "logs:write")
    services = request.app.state.services
    body = await json_body(request)
    now = services.clock()
    try:
        values = parse_alert(body, now=now, partial=False)
    except RuleError as exc:
        raise _rule_error(exc) from None
    await _check_filters(request, access, values)
    limit = services.settings.alerts_max_per_project

    def create() -> LogsAlert:
        created: LogsAlert = services.meta.alerts.create(
            access.team_id,
            plan_create(values, now=now),
            created_by_id=access.principal.user.id,
            max_per_team=limit,
        )
        return created

    try:
        alert = await anyio.to_thread.run_sync(create)
    except AlertLimitError:
        raise errors.validation_error(f"A project can have at most {limit} log alerts.", code="max_alerts") from None
    return await _respond(request, alert, 201)


@router.post("/simulate", summary="Replay an alert rule over past logs")
async def simulate_alert(project_id: str, request: Request) -> Response:
    access = await project_access(request, project_id, "logs:read")
    services = request.app.state.services
    body = await json_body(request)
    now = services.clock()
    try:
        parsed = parse_request(body, now=now)
    except SimulateError as exc:
        raise errors.validation_error(exc.detail, attr=exc.attr) from None

    def work() -> dict[str, Any]:
        counter = LogCounter(lambda select: services.run_query(select, team_id=access.team_id))
        return simulate(counter, parsed, now=now)

    try:
        return json_response(await run_in_store(access, request, work))
    except SimulateError as exc:
        raise errors.validation_error(exc.detail, attr=exc.attr) from None


@router.get("/{alert_id}", summary="Retrieve a log alert")
async def get_alert(project_id: str, alert_id: str, request: Request) -> Response:
    access = await project_access(request, project_id, "logs:read")
    meta = request.app.state.services.meta
    return await _respond(request, await anyio.to_thread.run_sync(meta.alerts.get, access.team_id, alert_id))


async def _update(project_id: str, alert_id: str, request: Request, *, partial: bool) -> Response:
    access = await project_access(request, project_id, "logs:write")
    services = request.app.state.services
    body = await json_body(request)
    now = services.clock()
    if isinstance(body, dict) and body.get("filters"):
        try:
            await _check_filters(request, access, {"filters": parse_filters_field(body["filters"])})
        except RuleError as exc:
            raise _rule_error(exc) from None

    def plan(current: LogsAlert) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        changes = parse_alert(body, now=now, partial=partial, current=current)
        return plan_update(current, changes, now=now)

    try:
        alert = await anyio.to_thread.run_sync(services.meta.alerts.update, access.team_id, alert_id, plan)
    except RuleError as exc:
        raise _rule_error(exc) from None
    return await _respond(request, alert)


@router.put("/{alert_id}", summary="Replace a log alert")
async def put_alert(project_id: str, alert_id: str, request: Request) -> Response:
    return await _update(project_id, alert_id, request, partial=False)


@router.patch("/{alert_id}", summary="Change some fields of a log alert")
async def patch_alert(project_id: str, alert_id: str, request: Request) -> Response:
    return await _update(project_id, alert_id, request, partial=True)


@router.delete("/{alert_id}", summary="Delete a log alert and its destinations")
async def delete_alert(project_id: str, alert_id: str, request: Request) -> Response:
    access = await project_access(request, project_id, "logs:write")
    meta = request.app.state.services.meta
    if not await anyio.to_thread.run_sync(meta.alerts.delete, access.team_id, alert_id):
        raise errors.not_found()
    return Response(status_code=204)


@router.post("/{alert_id}/reset", summary="Bring a broken alert back to not_firing")
async def reset_alert(project_id: str, alert_id: str, request: Request) -> Response:
    access = await project_access(request, project_id, "logs:write")
    meta = request.app.state.services.meta
    try:
        alert = await anyio.to_thread.run_sync(meta.alerts.update, access.team_id, alert_id, plan_reset)
    except RuleError as exc:
        raise _rule_error(exc) from None
    return await _respond(request, alert)


@router.get("/{alert_id}/events", summary="An alert's history, newest first")
async def alert_events(project_id: str, alert_id: str, request: Request) -> Response:
    access = await project_access(request, project_id, "logs:read")
    meta = request.app.state.services.meta
    kinds = [k for k in request.query_params.getlist("kind") for k in k.split(",") if k]
    for kind in kinds:
        if kind not in EVENT_KINDS:
            raise errors.validation_error(
                f'"{kind}" is not a valid choice: {", ".join(EVENT_KINDS)}.', attr="kind", code="invalid_choice"
            )
    limit, offset = page_bounds(request)

    def page() -> dict[str, Any] | None:
        alert = meta.alerts.get(access.team_id, alert_id)
        if alert is None:
            return None
        total, events = meta.alerts.list_events(access.team_id, alert.id, kinds=kinds, limit=limit, offset=offset)
        results = [
            {
                "id": event.id,
                "created_at": iso(event.created_at),
                "kind": event.kind,
                "state_before": event.state_before,
                "state_after": event.state_after,
                "threshold_breached": event.threshold_breached,
                "result_count": event.result_count,
                "error_message": event.error_message,
                "query_duration_ms": event.query_duration_ms,
            }
            for event in events
        ]
        return page_doc(request, total, limit, offset, results)

    doc = await anyio.to_thread.run_sync(page)
    if doc is None:
        raise errors.not_found()
    return json_response(doc)


async def _alert_or_404(access: ProjectAccess, request: Request, alert_id: str) -> LogsAlert:
    meta = request.app.state.services.meta
    alert: LogsAlert | None = await anyio.to_thread.run_sync(meta.alerts.get, access.team_id, alert_id)
    if alert is None:
        raise errors.not_found()
    return alert


@router.post("/{alert_id}/destinations", summary="Send an alert's notifications somewhere")
async def create_destination(project_id: str, alert_id: str, request: Request) -> Response:
    access = await project_access(request, project_id, "logs:write")
    services = request.app.state.services
    body = await json_body(request)
    alert_id = (await _alert_or_404(access, request, alert_id)).id
    try:
        destination_type, config = parse_destination(body, delivery_settings(services.settings))
    except DestinationError as exc:
        raise errors.validation_error(exc.detail, attr=exc.attr) from None
    sealed = services.secret_box.seal_fields(config, SECRET_FIELDS)
    created = await anyio.to_thread.run_sync(
        services.meta.alerts.add_destinations, access.team_id, alert_id, destination_type, sealed, KINDS
    )
    if created is None:
        raise errors.not_found()
    doc: dict[str, Any] = {
        "hog_function_ids": [d.id for d in created],
        "type": destination_type,
        "config": public_config(destination_type, config),
    }
    if "signing_secret" in config:
        # shown once, here: receivers verify X-Logpond-Signature with it
        doc["signing_secret"] = config["signing_secret"]
    return json_response(doc, 201)


@router.post("/{alert_id}/destinations/delete", summary="Remove destinations of an alert")
async def delete_destinations(project_id: str, alert_id: str, request: Request) -> Response:
    access = await project_access(request, project_id, "logs:write")
    meta = request.app.state.services.meta
    body = await json_body(request)
    alert_id = (await _alert_or_404(access, request, alert_id)).id
    ids = body.get("hog_function_ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not ids:
        raise errors.validation_error("Expected a non-empty list of destination ids.", attr="hog_function_ids")
    checked = []
    for i, raw in enumerate(ids):
        try:
            checked.append(str(uuid.UUID(str(raw))))
        except ValueError:
            raise errors.validation_error("Must be a valid UUID.", attr=f"hog_function_ids__{i}") from None
    missing = await anyio.to_thread.run_sync(meta.alerts.delete_destinations, access.team_id, alert_id, checked)
    if missing:
        raise errors.validation_error(
            f"Not a destination of this alert: {missing[0]}.", attr="hog_function_ids", code="invalid_destination"
        )
    return Response(status_code=204)
