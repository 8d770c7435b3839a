"""The Logs read API under ``/api/projects/<id>/logs/`` (scope ``logs:read``)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from logpond.api import errors
from logpond.api.auth import ProjectAccess, project_access
from logpond.api.bodies import MAX_API_BODY_BYTES, read_body_limited
from logpond.logs.filters import FilterError, parse_filters
from logpond.logs.query import (
    MAX_EXPORTABLE_LOGS,
    LogsQueryRunner,
    count_select,
    has_logs_select,
    parse_query_body,
)
from logpond.query.printer import QueryError
from logpond.store.base import StoreError

router = APIRouter(prefix="/api/projects/{project_id}/logs", tags=["logs"])


def json_response(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


async def json_body(request: Request) -> Any:
    raw = await read_body_limited(request, MAX_API_BODY_BYTES)
    if raw is None:
        raise errors.APIError(
            413, "Request body is larger than 20 MB.", code="payload_too_large", type="invalid_request"
        )
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.APIError(400, f"JSON parse error - {exc}", code="parse_error", type="invalid_request") from None


def filter_error(exc: FilterError) -> errors.APIError:
    return errors.validation_error(exc.detail, attr=exc.attr)


def store_failure(exc: Exception) -> errors.APIError:
    if isinstance(exc, StoreError) and exc.code == "TIMEOUT_EXCEEDED":
        return errors.server_error(
            "Query exceeded the maximum execution time. Narrow the date range or add filters.", status=504
        )
    if isinstance(exc, StoreError) and exc.code in ("MEMORY_LIMIT_EXCEEDED", "TOO_MANY_ROWS_OR_BYTES"):
        return errors.server_error("Query used too much memory or returned too many rows. Narrow it.", status=504)
    if isinstance(exc, StoreError) and exc.code == "CANNOT_COMPILE_REGEXP":
        return errors.validation_error("Invalid regular expression in a regex filter (RE2 syntax).", attr="filterGroup")
    if isinstance(exc, StoreError) and exc.code == "SYNTAX_ERROR" and "Max query size exceeded" in str(exc):
        # filter values (search text, names, keys) so long that the printed SQL is over the store's limit
        return errors.validation_error("The filters are too long. Shorten the search text or values.")
    if isinstance(exc, QueryError):
        return errors.validation_error(str(exc), code="query_error")
    return errors.server_error("Error while executing the logs query.")


async def run_in_store(access: ProjectAccess, request: Request, fn: Any) -> Any:
    try:
        return await anyio.to_thread.run_sync(fn)
    except (StoreError, QueryError) as exc:
        raise store_failure(exc) from exc
    except FilterError as exc:
        # some filter values are only checked while the query is built (a date in an is_date_* leaf)
        raise filter_error(exc) from None


@router.post("/query", summary="Search logs (LogsQuery)")
async def logs_query(project_id: str, request: Request) -> Response:
    access = await project_access(request, project_id, "logs:read")
    services = request.app.state.services
    body = await json_body(request)
    now = services.clock()
    try:
        doc, query = parse_query_body(body, now=now)
    except FilterError as exc:
        raise filter_error(exc) from None
    runner = LogsQueryRunner(
        lambda select: services.run_query(select, team_id=access.team_id),
        now=now,
        checkpoint=services.live_checkpoint(),
    )
    page = await run_in_store(access, request, lambda: runner.run(query))
    return json_response(
        {
            "query": doc,
            "results": page["results"],
            "hasMore": page["hasMore"],
            "nextCursor": page["nextCursor"],
            "maxExportableLogs": MAX_EXPORTABLE_LOGS,
            "columns": None,
        }
    )


@router.post("/count", summary="Count logs matching filters")
async def logs_count(project_id: str, request: Request) -> Response:
    access = await project_access(request, project_id, "logs:read")
    services = request.app.state.services
    body = await json_body(request)
    if not isinstance(body, dict):
        raise errors.validation_error("Expected a JSON object.", attr="query")
    doc = body.get("query", body)
    if not isinstance(doc, dict):
        raise errors.validation_error("Expected an object with the filters.", attr="query")
    try:
        filters = parse_filters(doc, now=services.clock())
    except FilterError as exc:
        raise filter_error(exc) from None
    result = await run_in_store(
        access, request, lambda: services.run_query(count_select(filters), team_id=access.team_id)
    )
    return json_response({"count": int(result.rows[0][0]) if result.rows else 0})


@router.get("/has_logs", summary="Whether the project has any logs")
async def has_logs(project_id: str, request: Request) -> Response:
    access = await project_access(request, project_id, "logs:read")
    services = request.app.state.services
    result = await run_in_store(access, request, lambda: services.run_query(has_logs_select(), team_id=access.team_id))
    return json_response({"hasLogs": bool(result.rows)})
