"""Log exports and their download, with PostHog's ExportedAsset shape.

- ``POST /api/projects/<id>/logs/export/`` (scope ``logs:read``) writes the file before answering, so the
  201 already has ``has_content: true``; a failed export leaves no record behind and answers like
  ``logs/query`` would (400 for a bad filter, 504 at a query limit).
- ``GET /api/projects/<id>/exports/<id>/`` and ``.../content/`` (scope ``export:read``) return the
  metadata and the file. As in PostHog, only the user who made an export can see it, and an expired one
  (midnight UTC seven days after it was made) is gone: both answer 404, like another project's id.

Files live in ``<data_dir>/exports/`` named by the asset id; expired ones are deleted whenever a new export
starts.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from logpond.api import errors
from logpond.api.auth import ProjectAccess, project_access
from logpond.api.logs import filter_error, json_body, json_response, run_in_store
from logpond.logs.dates import iso
from logpond.logs.export import (
    check_exportable,
    content_file_name,
    download_filename,
    filename_stem,
    parse_columns,
    parse_export_format,
    write_export,
)
from logpond.logs.filters import FilterError
from logpond.logs.query import MAX_EXPORTABLE_LOGS, LogsQuery, LogsQueryRunner, parse_query_body
from logpond.meta.records import ExportedAsset
from logpond.services import Services

router = APIRouter(prefix="/api/projects/{project_id}", tags=["exports"])

EXPORT_TTL = dt.timedelta(days=7)  # PostHog keeps CSV and JSONL exports a week
# The query is stored with the export; a filter this large is a mistake, not a query.
MAX_SOURCE_BYTES = 64 * 1024
# Exports are written inside their request, so one still without content after this never finished.
UNFINISHED_AFTER = dt.timedelta(hours=1)
CONTENT_MAX_AGE = 86_400
RETRY_AFTER_SECONDS = 5


class _ExportSlots:
    """How many more exports may start now (``export_max_concurrent`` minus those running)."""

    def __init__(self, size: int) -> None:
        self.free = size


def _take_slot(request: Request) -> _ExportSlots:
    # Only touched on the event loop, so no lock: nothing awaits between the check and the update.
    state = request.app.state
    slots: _ExportSlots | None = getattr(state, "export_slots", None)
    if slots is None:
        slots = state.export_slots = _ExportSlots(state.services.settings.export_max_concurrent)
    if slots.free <= 0:
        raise errors.throttled("Too many log exports are being written; retry shortly.", RETRY_AFTER_SECONDS)
    slots.free -= 1
    return slots


def _expiry(now: dt.datetime) -> dt.datetime:
    return (now + EXPORT_TTL).astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _filename(asset: ExportedAsset) -> str:
    return download_filename(str(asset.export_context.get("filename", "")), asset.created_at, asset.export_format)


def asset_json(asset: ExportedAsset, now: dt.datetime) -> dict[str, Any]:
    """PostHog's ExportedAssetSerializer fields (without its access-control ``user_access_level``)."""
    exception = asset.exception
    if not asset.has_content and exception is None and now - asset.created_at > UNFINISHED_AFTER:
        exception = "The export did not finish. Start a new one."
    return {
        "id": asset.id,
        "dashboard": None,
        "insight": None,
        "export_format": asset.export_format,
        "created_at": iso(asset.created_at),
        "has_content": asset.has_content,
        "export_context": asset.export_context,
        "filename": _filename(asset),
        "expires_after": iso(asset.expires_after) if asset.expires_after else None,
        "exception": exception,
    }


def _delete_expired(services: Services, now: dt.datetime) -> None:
    for asset in services.meta.delete_expired_exported_assets(now):
        name = content_file_name(asset.id, asset.export_format)
        for leftover in (name, name + ".part"):
            (services.settings.exports_dir / leftover).unlink(missing_ok=True)


def _export(
    services: Services,
    access: ProjectAccess,
    runner: LogsQueryRunner,
    query: LogsQuery,
    export_context: dict[str, Any],
    columns: tuple[str, ...],
    export_format: str,
    now: dt.datetime,
) -> ExportedAsset:
    """Record the export, write its file, mark it done; on any failure remove both. Blocking."""
    meta = services.meta
    exports_dir = services.settings.exports_dir
    exports_dir.mkdir(parents=True, exist_ok=True)
    _delete_expired(services, now)
    asset = meta.create_exported_asset(
        access.team_id,
        export_format=export_format,
        export_context=export_context,
        created_by_id=access.principal.user.id,
        expires_after=_expiry(now),
    )
    path = exports_dir / content_file_name(asset.id, export_format)
    try:
        write_export(runner.run, query, columns, export_format, path)
        done: ExportedAsset = meta.mark_exported_asset_done(access.team_id, asset.id, path.name)
        return done
    except BaseException:
        path.unlink(missing_ok=True)
        meta.delete_exported_asset(access.team_id, asset.id)
        raise


@router.post("/logs/export", status_code=201, summary="Export logs matching a LogsQuery to a file")
async def logs_export(project_id: str, request: Request) -> Response:
    access = await project_access(request, project_id, "logs:read")
    services: Services = request.app.state.services
    body = await json_body(request)
    now = services.clock()
    try:
        doc, query = parse_query_body(body, now=now)
        check_exportable(query)
        columns = parse_columns(body.get("columns"))
        export_format = parse_export_format(body.get("export_format"))
    except FilterError as exc:
        raise filter_error(exc) from None
    if len(orjson.dumps(doc)) > MAX_SOURCE_BYTES:
        raise errors.validation_error(f"The query is larger than {MAX_SOURCE_BYTES // 1024} KB.", attr="query")
    export_context = {
        # as PostHog records it: the query as sent, with the export's row cap as its limit
        "source": {**doc, "kind": "LogsQuery", "limit": MAX_EXPORTABLE_LOGS},
        "columns": list(columns),
        "filename": filename_stem(doc, now.astimezone(dt.UTC).date()),
        "row_limit": MAX_EXPORTABLE_LOGS,
    }
    runner = LogsQueryRunner(
        lambda select: services.run_query(select, team_id=access.team_id),
        now=now,
        checkpoint=services.live_checkpoint(),
    )
    slots = _take_slot(request)
    try:
        asset = await run_in_store(
            access,
            request,
            lambda: _export(services, access, runner, query, export_context, columns, export_format, now),
        )
    finally:
        slots.free += 1
    return json_response(asset_json(asset, services.clock()), status=201)


def _parse_export_id(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise errors.not_found()
    return int(raw)


async def _visible_asset(request: Request, project_id: str, export_id: str) -> ExportedAsset:
    """The caller's own unexpired export of this project, else 404."""
    access = await project_access(request, project_id, "export:read")
    services: Services = request.app.state.services
    asset_id = _parse_export_id(export_id)
    asset: ExportedAsset | None = await anyio.to_thread.run_sync(
        services.meta.get_exported_asset, access.team_id, asset_id
    )
    if (
        asset is None
        or asset.created_by_id != access.principal.user.id
        or (asset.expires_after is not None and asset.expires_after <= services.clock())
    ):
        raise errors.not_found()
    return asset


@router.get("/exports/{export_id}", summary="An export's metadata")
async def export_detail(project_id: str, export_id: str, request: Request) -> Response:
    asset = await _visible_asset(request, project_id, export_id)
    return json_response(asset_json(asset, request.app.state.services.clock()))


@router.get("/exports/{export_id}/content", summary="Download an export's file")
async def export_content(project_id: str, export_id: str, request: Request) -> Response:
    asset = await _visible_asset(request, project_id, export_id)
    services: Services = request.app.state.services
    name = asset.content_location
    if name is None or Path(name).name != name:
        raise errors.not_found("This export has no content: it failed or has not finished.")
    path = services.settings.exports_dir / name
    try:
        stat = await anyio.to_thread.run_sync(os.stat, path)
    except FileNotFoundError:
        raise errors.not_found("This export's file is gone.") from None
    return FileResponse(
        path,
        media_type=asset.export_format,
        filename=_filename(asset),
        stat_result=stat,
        headers={"Cache-Control": f"private, max-age={CONTENT_MAX_AGE}"},
    )
