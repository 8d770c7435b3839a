"""The log explorer's aggregates under ``/api/projects/<id>/logs/`` (scope ``logs:read``): sparkline,
count-ranges, services, facet values and group-by. The counting lives in ``logpond.logs.explore``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from logpond.api.auth import project_access
from logpond.api.logs import filter_error, json_body, json_response, run_in_store
from logpond.logs import attributes as logs_attributes
from logpond.logs import explore, patterns_query
from logpond.logs.aggregates import LogCounter
from logpond.logs.filters import FilterError

router = APIRouter(prefix="/api/projects/{project_id}/logs", tags=["logs"])


async def _answer(project_id: str, request: Request, compute: Callable[..., Any], *, needs_execute: bool) -> Response:
    """Authorise, read the query object, and run ``compute`` in a worker thread against the store."""
    access = await project_access(request, project_id, "logs:read")
    services = request.app.state.services
    body = await json_body(request)
    now = services.clock()

    def execute(select: Any) -> Any:
        return services.run_query(select, team_id=access.team_id)

    def work() -> Any:
        doc = explore.query_object(body)
        counter = LogCounter(execute)
        if needs_execute:
            return compute(counter, execute, doc, now=now)
        return compute(counter, doc, now=now)

    try:
        return json_response(await run_in_store(access, request, work))
    except FilterError as exc:
        raise filter_error(exc) from None


@router.post("/sparkline", summary="Log volume over time by severity or service")
async def sparkline(project_id: str, request: Request) -> Response:
    return await _answer(project_id, request, explore.sparkline, needs_execute=False)


@router.post("/count-ranges", summary="Non-empty time buckets with their log counts")
async def count_ranges(project_id: str, request: Request) -> Response:
    return await _answer(project_id, request, explore.count_ranges, needs_execute=False)


@router.post("/services", summary="Per-service volume, errors and sparkline")
async def services(project_id: str, request: Request) -> Response:
    return await _answer(project_id, request, explore.services, needs_execute=False)


@router.post("/facet_values", summary="Value counts of one facet")
async def facet_values(project_id: str, request: Request) -> Response:
    return await _answer(project_id, request, explore.facet_values, needs_execute=True)


@router.post("/group-by", summary="Counts per value of up to four dimensions")
async def group_by(project_id: str, request: Request) -> Response:
    return await _answer(
        project_id,
        request,
        lambda counter, execute, doc, now: explore.group_by(execute, doc, now=now),
        needs_execute=True,
    )


@router.post("/patterns", summary="Log templates mined from a sample of the matching logs")
async def patterns(project_id: str, request: Request) -> Response:
    return await _answer(project_id, request, patterns_query.patterns, needs_execute=True)


async def _answer_params(project_id: str, request: Request, compute: Callable[..., Any]) -> Response:
    access = await project_access(request, project_id, "logs:read")
    services = request.app.state.services
    params = dict(request.query_params)
    now = services.clock()

    def work() -> Any:
        return compute(lambda select: services.run_query(select, team_id=access.team_id), params, now=now)

    try:
        return json_response(await run_in_store(access, request, work))
    except FilterError as exc:
        raise filter_error(exc) from None


@router.get("/attributes", summary="Attribute keys seen in a time range")
async def attributes(project_id: str, request: Request) -> Response:
    return await _answer_params(project_id, request, logs_attributes.attributes)


@router.get("/values", summary="Values of one attribute key")
async def values(project_id: str, request: Request) -> Response:
    return await _answer_params(project_id, request, logs_attributes.values)
