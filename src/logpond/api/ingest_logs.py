"""OTLP/HTTP logs ingestion: ``POST /i/v1/logs`` and ``/v1/logs`` with a project token.

A 200 means the request is in the fsynced write-ahead log and will be queryable within about a second.
Errors carry PostHog capture's ``{"error": ...}`` plus our usual ``type/code/detail/attr`` fields, so both
OTLP exporters (which only read the status) and people reading the body learn what was wrong.
"""

from __future__ import annotations

import asyncio
import logging
import re
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import anyio.to_thread
import pyarrow as pa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from logpond.api.auth import project_for_token
from logpond.api.bodies import read_body_limited
from logpond.ingest.errors import DecodeError, PayloadTooLarge
from logpond.ingest.pipeline import arrow_from_bytes, decode_otlp_logs, decode_otlp_logs_ipc
from logpond.ingest.wal import KIND_OTLP_LOGS
from logpond.ingest.writer import Backpressure

log = logging.getLogger(__name__)
router = APIRouter()

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{8,200}$")
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Encoding",
}


def _error(status: int, message: str, *, code: str, type_: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": message, "type": type_, "code": code, "detail": message, "attr": None}
    return JSONResponse(body, status_code=status, headers={**_CORS, **(headers or {})})


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("token") or None


async def decode_request(services: Any, body: bytes, team_id: int, received_ns: int) -> pa.Table:
    """Decode in a worker process when the app has a pool (a second core for the GIL-bound part), else here."""
    limit = services.settings.max_decompressed_bytes
    pool = services.decode_pool
    if pool is not None:
        loop = asyncio.get_running_loop()
        try:
            ipc = await loop.run_in_executor(pool, decode_otlp_logs_ipc, body, team_id, received_ns, limit)
            return arrow_from_bytes(ipc)
        except BrokenProcessPool:
            # a worker died (OOM killer, signal): replace the pool once and decode this request here
            log.warning("the decode worker pool broke; starting a new one")
            services.restart_decode_pool(pool)
    return await anyio.to_thread.run_sync(
        lambda: decode_otlp_logs(body, team_id=team_id, received_ns=received_ns, max_decompressed_bytes=limit)
    )


@router.options("/i/v1/logs", include_in_schema=False)
@router.options("/v1/logs", include_in_schema=False)
async def logs_preflight() -> Response:
    return Response(status_code=204, headers=_CORS)


@router.post("/i/v1/logs", summary="Ingest OTLP/HTTP logs (protobuf or JSON, optionally gzip)")
@router.post("/v1/logs", include_in_schema=False)
async def ingest_otlp_logs(request: Request) -> Response:
    services = request.app.state.services
    settings = services.settings
    token = _token(request)
    if token is None:
        return _error(401, "No token provided", code="not_authenticated", type_="authentication_error")
    if token.startswith("phx_"):
        return _error(
            401,
            "Invalid project API key (a personal API key cannot be used to ingest; use the project token phc_...)",
            code="invalid_api_key",
            type_="authentication_error",
        )
    if not _TOKEN_RE.match(token):
        return _error(
            401, "Invalid project API key (malformed token)", code="invalid_api_key", type_="authentication_error"
        )
    project = await project_for_token(request, token)
    if project is None:
        return _error(
            401,
            "Invalid project API key (no project has this token)",
            code="invalid_api_key",
            type_="authentication_error",
        )
    body = await read_body_limited(request, settings.max_request_bytes)
    if body is None:
        return _error(
            413,
            f"Request body is larger than {settings.max_request_bytes} bytes",
            code="payload_too_large",
            type_="invalid_request",
        )
    watermark = services.ingest_watermark
    received_ns = watermark.begin()
    try:
        return await _decode_and_submit(services, project.id, body, received_ns)
    finally:
        watermark.end(received_ns)


async def _decode_and_submit(services: Any, team_id: int, body: bytes, received_ns: int) -> Response:
    try:
        table = await decode_request(services, body, team_id, received_ns)
    except PayloadTooLarge as exc:
        return _error(413, str(exc), code="payload_too_large", type_="invalid_request")
    except DecodeError as exc:
        return _error(400, str(exc), code="invalid_payload", type_="validation_error")
    if table.num_rows:
        writer = services.writer
        if writer is None:
            return _error(
                503, "Ingestion is not running", code="unavailable", type_="server_error", headers={"Retry-After": "5"}
            )
        try:
            await anyio.to_thread.run_sync(writer.submit, KIND_OTLP_LOGS, team_id, received_ns, body, table)
        except Backpressure as exc:
            return _error(
                503, str(exc), code="unavailable", type_="server_error", headers={"Retry-After": str(exc.retry_after)}
            )
    return JSONResponse({}, headers=_CORS)
