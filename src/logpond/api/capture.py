"""PostHog event capture: ``/batch/``, ``/capture/``, ``/e/``, ``/i/v0/e/`` and ``/track/``.

The SDKs post here with the project token inside the payload. A 200 ``{"status": "Ok"}`` means the request
is in the fsynced write-ahead log of the events writer; persons are worked out and events inserted right
after, in order (``logpond.events``). Every refusal names what was wrong and stores nothing of the request:

- 400 ``invalid_payload``: undecodable body (bad gzip, base64, LZ64, JSON), an empty batch, or an unusable
  event (``attr`` names it, e.g. ``batch[3].event``);
- 401 ``missing_api_key`` / ``invalid_api_key``: no token, a personal API key, an unknown token, or
  several tokens in one request;
- 413 ``payload_too_large``: the body over ``capture_max_batch_bytes`` (``/batch/``) or
  ``capture_max_event_bytes`` (the others), or over ``max_decompressed_bytes`` once decompressed;
- 503 ``unavailable`` with ``Retry-After`` when the writer's queue is full (the SDKs retry).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from logpond.api.auth import project_for_token
from logpond.api.bodies import read_body_limited
from logpond.events.batch import EventBatch, decode_capture_batch, wal_payload
from logpond.ingest.capture import InvalidEvent
from logpond.ingest.errors import IngestError, PayloadTooLarge
from logpond.ingest.wal import KIND_CAPTURE
from logpond.ingest.writer import Backpressure

log = logging.getLogger(__name__)
router = APIRouter()

_EVENT_PATHS = ("/capture", "/e", "/i/v0/e", "/track")
_METHODS = "GET, POST, OPTIONS"
_INVALID_KEY = "Project API key invalid. You can find your project API key in PostHog project settings."
_MISSING_KEY = "API key not provided. You can find your project API key in PostHog project settings."


def _cors(request: Request) -> dict[str, str]:
    """Browsers (posthog-js) post with credentials from any site: echo the origin, as PostHog does."""
    origin = request.headers.get("origin")
    headers = {
        "Access-Control-Allow-Methods": _METHODS,
        "Access-Control-Allow-Headers": request.headers.get("access-control-request-headers")
        or "Content-Type, Content-Encoding, Authorization",
        "Access-Control-Max-Age": "86400",
    }
    if origin:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Credentials"] = "true"
        headers["Vary"] = "Origin"
    else:
        headers["Access-Control-Allow-Origin"] = "*"
    return headers


def _error(
    request: Request,
    status: int,
    detail: str,
    *,
    code: str,
    type_: str,
    attr: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"type": type_, "code": code, "detail": detail, "attr": attr}
    return JSONResponse(body, status_code=status, headers={**_cors(request), **(headers or {})})


async def _preflight(request: Request) -> Response:
    return Response(status_code=204, headers=_cors(request))


async def _capture_batch(request: Request) -> Response:
    return await _capture(request, request.app.state.services.settings.capture_max_batch_bytes)


async def _capture_event(request: Request) -> Response:
    return await _capture(request, request.app.state.services.settings.capture_max_event_bytes)


for _path in ("/batch", *_EVENT_PATHS):
    _handler = _capture_batch if _path == "/batch" else _capture_event
    _summary = "Capture PostHog events (posthog-js, SDKs, curl)"
    router.add_api_route(_path, _handler, methods=["POST"], summary=_summary, include_in_schema=_path == "/batch")
    router.add_api_route(_path, _handler, methods=["GET"], include_in_schema=False)
    router.add_api_route(_path, _preflight, methods=["OPTIONS"], include_in_schema=False)


async def _capture(request: Request, max_bytes: int) -> Response:
    services = request.app.state.services
    body = await read_body_limited(request, max_bytes)
    if body is None:
        return _error(
            request,
            413,
            f"Request body is larger than {max_bytes} bytes",
            code="payload_too_large",
            type_="invalid_request",
        )
    query = dict(request.query_params)
    content_type = request.headers.get("content-type")
    content_encoding = request.headers.get("content-encoding")
    received_ns = time.time_ns()
    try:
        token, batch = await _decode(services, body, query, content_type, content_encoding, received_ns)
    except IngestError as exc:
        return _ingest_error(request, exc)
    if token is None:
        return _error(request, 401, _MISSING_KEY, code="missing_api_key", type_="authentication_error")
    project = None if token.startswith("phx_") else await project_for_token(request, token)
    if project is None:
        return _error(request, 401, _INVALID_KEY, code="invalid_api_key", type_="authentication_error")
    batch.team_id = project.id
    writer = services.events_writer
    if writer is None:
        return _unavailable(request, "Ingestion is not running", 5)
    try:
        payload = wal_payload(body, query, content_type, content_encoding)
        await anyio.to_thread.run_sync(writer.submit, KIND_CAPTURE, project.id, received_ns, payload, batch)
    except Backpressure as exc:
        return _unavailable(request, str(exc), exc.retry_after)
    if query.get("beacon") == "1":
        return Response(status_code=204, headers=_cors(request))
    return JSONResponse({"status": "Ok"}, headers=_cors(request))


async def _decode(
    services: Any,
    body: bytes,
    query: dict[str, str],
    content_type: str | None,
    content_encoding: str | None,
    received_ns: int,
) -> tuple[str | None, EventBatch]:
    """Decode in a worker process when the app has a pool (the second core), else in a thread here."""
    args = (body, query, content_type, content_encoding, received_ns, services.settings.max_decompressed_bytes)
    pool = services.decode_pool
    if pool is not None:
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, decode_capture_batch, *args)
        except BrokenProcessPool:
            log.warning("the decode worker pool broke; starting a new one")
            services.restart_decode_pool(pool)
    return await anyio.to_thread.run_sync(lambda: decode_capture_batch(*args))


def _ingest_error(request: Request, exc: IngestError) -> Response:
    if isinstance(exc, PayloadTooLarge):
        return _error(request, 413, exc.reason, code="payload_too_large", type_="invalid_request")
    if exc.status == 401:  # several tokens in one request
        return _error(request, 401, exc.reason, code="invalid_api_key", type_="authentication_error")
    attr: Any = exc.attr if isinstance(exc, InvalidEvent) else None
    return _error(request, 400, exc.reason, code="invalid_payload", type_="validation_error", attr=attr)


def _unavailable(request: Request, detail: str, retry_after: int) -> Response:
    return _error(
        request,
        503,
        detail,
        code="unavailable",
        type_="server_error",
        headers={"Retry-After": str(retry_after)},
    )
