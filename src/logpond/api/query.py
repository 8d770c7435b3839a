"""PostHog's query API: ``/api/projects/<id>/query/`` runs HogQL (scope ``query:read`` for every action).

``POST`` runs a ``HogQLQuery`` and answers 200 with the rows, or 202 with a ``query_status`` when
``refresh`` asks for async execution; ``GET <id>/`` polls; ``DELETE <id>/`` cancels a queued or running
query. Errors follow PostHog's mapping: 400 ``hogql_syntax_error`` / ``hogql_query_error`` / the
ClickHouse error's name, 504 when the time or memory limit is hit, 429 when the project's concurrent
queries and their queue are full, 500 without any SQL or stack trace otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response

from logpond.api import errors
from logpond.api.auth import ProjectAccess, project_access
from logpond.api.logs import json_body, json_response
from logpond.hogql.errors import HogQLError
from logpond.hogql.filters import FiltersError
from logpond.hogql.jobs import ConcurrencyLimitExceeded, QueryCancelled, QueryJob, RateLimited
from logpond.hogql.runner import Compiled, HogQLLimits, HogQLRequest
from logpond.store.base import StoreError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/projects/{project_id}/query", tags=["query"])

_REFRESH_MODES = (
    "blocking",
    "async",
    "lazy_async",
    "force_blocking",
    "force_async",
    "force_cache",
    "async_except_on_cache_miss",
)
_ASYNC_MODES = ("async", "lazy_async", "force_async")

# ClickHouse errors caused by the query itself: 400 with the error's name and our own sentence. Their
# ClickHouse text is never shown: it can quote values from rows and the printed SQL.
_USER_ERRORS = {
    "ILLEGAL_TYPE_OF_ARGUMENT": "A function got an argument of a type it does not accept; convert it first "
    "(e.g. toString(x), toFloat(x), toDateTime(x)).",
    "NO_COMMON_TYPE": "Values of incompatible types are mixed (e.g. a string and a number in one comparison, "
    "array or if()); convert one of them.",
    "NOT_AN_AGGREGATE": "A selected column is neither aggregated nor in GROUP BY.",
    "ILLEGAL_AGGREGATION": "An aggregate function is used where it is not allowed (e.g. in WHERE, or inside "
    "another aggregate).",
    "TYPE_MISMATCH": "A value does not match the type it is compared or combined with.",
    "UNKNOWN_IDENTIFIER": "A name in the query does not match any column of the tables or subqueries it reads.",
    "UNKNOWN_TABLE": "A table in the query does not exist.",
    "CANNOT_PARSE_UUID": "A string could not be read as a UUID.",
    "CANNOT_PARSE_TEXT": "A string could not be converted to the type asked for; use the OrNull variant "
    "(e.g. toInt64OrNull) to get NULL instead.",
    "CANNOT_PARSE_DATETIME": "A string could not be read as a date and time.",
    "CANNOT_PARSE_DATE": "A string could not be read as a date.",
    "CANNOT_PARSE_NUMBER": "A string could not be read as a number.",
    "CANNOT_PARSE_INPUT_ASSERTION_FAILED": "A string could not be converted to the type asked for.",
    "CANNOT_CONVERT_TYPE": "A value could not be converted to the type asked for.",
    "NUMBER_OF_ARGUMENTS_DOESNT_MATCH": "A function got the wrong number of arguments.",
    "TOO_FEW_ARGUMENTS_FOR_FUNCTION": "A function got too few arguments.",
    "TOO_MANY_ARGUMENTS_FOR_FUNCTION": "A function got too many arguments.",
    "BAD_ARGUMENTS": "A function got an argument value it does not accept.",
    "ARGUMENT_OUT_OF_BOUND": "An argument is out of the range the function accepts.",
    "ILLEGAL_DIVISION": "Division by zero in integer arithmetic.",
    "ILLEGAL_COLUMN": "A function cannot read a column of this kind (e.g. it needs a constant).",
    "AMBIGUOUS_COLUMN_NAME": "A column name is ambiguous; qualify it with its table alias.",
    "AMBIGUOUS_IDENTIFIER": "A name is ambiguous; qualify it with its table alias.",
    "MULTIPLE_EXPRESSIONS_FOR_ALIAS": "One alias names two different expressions.",
    "CYCLIC_ALIASES": "Aliases refer to each other in a cycle.",
    "INVALID_JOIN_ON_EXPRESSION": "The join condition is not supported; join on equalities between the tables.",
    "TOO_DEEP_AST": "The query is nested too deeply.",
    "TOO_BIG_AST": "The query has too many expressions.",
    "TOO_DEEP_RECURSION": "The query is nested too deeply.",
    "CANNOT_COMPILE_REGEXP": "A regular expression is not valid (RE2 syntax).",
    "SIZES_OF_ARRAYS_DONT_MATCH": "Arrays of different lengths were combined element by element.",
    "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE": "A value is out of the range of its type.",
    "DECIMAL_OVERFLOW": "A decimal calculation overflowed.",
    "UNSUPPORTED_METHOD": "The query uses an operation this store does not support.",
    "NOT_IMPLEMENTED": "The query uses an operation this store does not support.",
    "UNEXPECTED_EXPRESSION": "An expression appears where it is not allowed.",
    "SYNTAX_ERROR": "The compiled query was rejected by the store; simplify the query.",
    "ILLEGAL_FINAL": "FINAL cannot be used with this table.",
    "SAMPLING_NOT_SUPPORTED": "This table does not support SAMPLE.",
    "INCORRECT_QUERY": "The query is not valid.",
    "TOO_MANY_ROWS_OR_BYTES": "The query returned more rows than allowed; add a LIMIT or aggregate.",
    "QUERY_WAS_CANCELLED": "The query was cancelled.",
    "UNKNOWN_AGGREGATE_FUNCTION": "An aggregate function name is not known.",
    "INCORRECT_RESULT_OF_SCALAR_SUBQUERY": "A scalar subquery returned more than one row; add LIMIT 1 or aggregate.",
    "TOO_LARGE_STRING_SIZE": "A string would be too large.",
    "TOO_LARGE_ARRAY_SIZE": "An array would be too large.",
    "UNKNOWN_TYPE": "A type name is not known.",
    "CANNOT_READ_ARRAY_FROM_TEXT": "A string could not be read as an array.",
    "CANNOT_PARSE_QUOTED_STRING": "A string could not be read.",
}
_OVER_LIMIT = {
    "TIMEOUT_EXCEEDED": "The query hit the maximum execution time of {seconds:g} seconds. Narrow the time range, "
    "filter on timestamp, or aggregate over fewer rows.",
    "MEMORY_LIMIT_EXCEEDED": "The query used more memory than one query may. Narrow the time range, group by "
    "fewer values, or aggregate before joining.",
}


def query_failure(exc: BaseException, limits: HogQLLimits | None = None) -> errors.APIError:
    """The API error for a failed query; never includes SQL, stack traces or ClickHouse's text."""
    if isinstance(exc, FiltersError):
        return errors.validation_error(exc.detail, attr=exc.attr)
    if isinstance(exc, HogQLError):
        return errors.validation_error(exc.detail, code=exc.code)
    if isinstance(exc, ConcurrencyLimitExceeded):
        return errors.throttled(
            "Too many queries are running for this project and the queue is full. Retry later.", exc.retry_after
        )
    if isinstance(exc, QueryCancelled):
        return errors.validation_error("The query was cancelled.", code="query_cancelled")
    if isinstance(exc, StoreError):
        if exc.code in _OVER_LIMIT:
            seconds = limits.max_execution_time if limits else 0
            return errors.server_error(_OVER_LIMIT[exc.code].format(seconds=seconds), status=504)
        if exc.code == "QUERY_WAS_CANCELLED":
            return errors.validation_error(_USER_ERRORS[exc.code], code="query_cancelled")
        if exc.code in _USER_ERRORS:
            return errors.validation_error(f"{_USER_ERRORS[exc.code]} ({exc.code})", code=exc.code.lower())
        log.warning("HogQL query failed in the store: %s", exc.code or "unknown error")
        return errors.server_error("ClickHouse error while executing query.")
    log.exception("HogQL query failed", exc_info=exc)
    return errors.server_error("A server error occurred.")


@dataclass
class _Parsed:
    request: HogQLRequest
    is_async: bool
    query_id: str | None
    name: str | None


def _parse_body(body: Any) -> _Parsed:
    if not isinstance(body, dict):
        raise errors.validation_error("Expected a JSON object with a query.", attr="query")
    query = body.get("query")
    if not isinstance(query, dict):
        raise errors.validation_error("This field is required and must be a query object.", attr="query")
    if query.get("kind") == "DataVisualizationNode" and isinstance(query.get("source"), dict):
        query = query["source"]
    kind = query.get("kind")
    if kind != "HogQLQuery":
        raise errors.validation_error(
            f"Unsupported query kind {kind!r}: this server runs HogQLQuery.", attr="query__kind"
        )
    text = query.get("query")
    if not isinstance(text, str) or not text.strip():
        raise errors.validation_error("This field is required and must be a HogQL string.", attr="query__query")
    values = query.get("values") or {}
    if not isinstance(values, dict):
        raise errors.validation_error("Expected an object of placeholder values.", attr="query__values")
    variables: dict[str, Any] = {}
    raw_variables = query.get("variables") or {}
    if not isinstance(raw_variables, dict):
        raise errors.validation_error("Expected an object of variables.", attr="query__variables")
    for variable in raw_variables.values():
        if not isinstance(variable, dict) or not isinstance(variable.get("code_name"), str):
            raise errors.validation_error("Each variable needs a code_name.", attr="query__variables")
        variables[variable["code_name"]] = None if variable.get("isNull") else variable.get("value")
    refresh = body.get("refresh", "blocking")
    if refresh is True:
        refresh = "force_blocking"
    if refresh is None or refresh is False:
        refresh = "blocking"
    if refresh not in _REFRESH_MODES:
        raise errors.validation_error(
            f"Unknown refresh mode {refresh!r}; expected one of {', '.join(_REFRESH_MODES)}.", attr="refresh"
        )
    is_async = refresh in _ASYNC_MODES or body.get("async") is True
    query_id = body.get("client_query_id")
    if query_id is not None and (not isinstance(query_id, str) or not 0 < len(query_id) <= 200 or "/" in query_id):
        raise errors.validation_error(
            "Expected a string of at most 200 characters without '/'.", attr="client_query_id"
        )
    name = body.get("name") or query.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 128):
        raise errors.validation_error("Expected a string of at most 128 characters.", attr="name")
    return _Parsed(
        HogQLRequest(
            query=text,
            values=values,
            filters=body.get("filters_override") or query.get("filters"),
            variables=variables,
            explain=bool(query.get("explain")),
        ),
        is_async,
        query_id,
        name,
    )


async def _run(
    request: Request, access: ProjectAccess, job: QueryJob, parsed: _Parsed, limits: HogQLLimits
) -> dict[str, Any]:
    services = request.app.state.services
    runner, jobs, store = services.hogql_runner, services.query_jobs, services.store
    now = services.clock()
    compiled: Compiled = await anyio.to_thread.run_sync(
        lambda: runner.compile(access.team_id, parsed.request, limits, now=now)
    )
    async with jobs.slot(job):
        return await anyio.to_thread.run_sync(
            lambda: runner.execute(
                compiled,
                parsed.request,
                execute=lambda sql: store.execute_cancellable(sql, job.tag),
                now=now,
                timezone=access.project.timezone or "UTC",
            )
        )


async def _run_async(
    request: Request, access: ProjectAccess, job: QueryJob, parsed: _Parsed, limits: HogQLLimits
) -> None:
    jobs = request.app.state.services.query_jobs
    try:
        result = await _run(request, access, job, parsed, limits)
        result["query_status"] = None
        job.results = result
    except asyncio.CancelledError:
        job.error_message, job.error_status = "The query was cancelled.", 400
    except BaseException as exc:  # every failure is reported through the poll, none is raised here
        failure = query_failure(exc, limits)
        job.error_message = failure.detail if failure.status < 500 or failure.status == 504 else None
        job.error_status = failure.status
    finally:
        jobs.finish(job)


@router.post("", summary="Run a HogQL query")
async def create_query(project_id: str, request: Request) -> Response:
    access = await project_access(request, project_id, "query:read")
    services = request.app.state.services
    parsed = _parse_body(await json_body(request))
    personal_key = access.principal.key is not None
    if personal_key:
        try:
            services.query_rate_limiter.check(access.team_id)
        except RateLimited as exc:
            raise errors.throttled(str(exc), exc.retry_after) from None
    limits = services.hogql_limits(personal_key=personal_key)
    job = QueryJob(
        id=parsed.query_id or uuid.uuid4().hex,
        tag=uuid.uuid4().hex,
        team_id=access.team_id,
        is_async=parsed.is_async,
        start_time=services.clock(),
        labels=[parsed.name] if parsed.name else [],
    )
    try:
        services.query_jobs.register(job)
    except ValueError as exc:
        raise errors.validation_error(str(exc), attr="client_query_id") from None
    if parsed.is_async:
        job.task = asyncio.create_task(_run_async(request, access, job, parsed, limits))
        return json_response({"query_status": job.status()}, status=202)
    try:
        result = await _run(request, access, job, parsed, limits)
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise query_failure(exc, limits) from None
    finally:
        services.query_jobs.finish(job)
    return json_response(result)


def _job_or_404(request: Request, access: ProjectAccess, query_id: str) -> QueryJob:
    job: QueryJob | None = request.app.state.services.query_jobs.get(access.team_id, query_id)
    if job is None:
        raise errors.not_found("Query not found.")
    return job


@router.get("/{query_id}", summary="Poll an async query")
async def query_status(project_id: str, query_id: str, request: Request) -> Response:
    access = await project_access(request, project_id, "query:read")
    job = _job_or_404(request, access, query_id)
    jobs = request.app.state.services.query_jobs
    body = {"query_status": job.status(jobs.expiration(job))}
    if not job.complete:
        return json_response(body, status=202)
    if job.error_status is not None:
        return json_response(body, status=400 if job.error_message and job.error_status != 504 else job.error_status)
    return json_response(body)


@router.delete("/{query_id}", summary="Cancel a queued or running query")
async def cancel_query(project_id: str, query_id: str, request: Request) -> Response:
    access = await project_access(request, project_id, "query:read")
    job = _job_or_404(request, access, query_id)
    if job.complete:
        return json_response({"message": "Query is already complete."})
    job.cancelled = True
    store = request.app.state.services.store
    if job.task is not None and not job.running:
        job.task.cancel()  # still compiling or waiting for a slot
    # the statement may not be registered in the store yet: try for a short while
    for _ in range(100):
        if job.complete or not job.running and job.task is None:
            break
        if job.running and await anyio.to_thread.run_sync(store.cancel, job.tag):
            break
        await asyncio.sleep(0.02)
    return json_response({"message": "Query cancelled."})
