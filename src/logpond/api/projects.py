"""Projects, organisations, the current user and the current personal API key (PostHog §3 shapes).

ETL connectors read these to discover projects and name their streams; the fields are PostHog's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response

from logpond.api import errors
from logpond.api.auth import Principal, authenticate, project_access
from logpond.api.logs import json_response
from logpond.logs.dates import iso

router = APIRouter(prefix="/api", tags=["projects"])

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def _ts(value: dt.datetime | None) -> str | None:
    return iso(value) if value is not None else None


def absolute_url(request: Request, **params: Any) -> str:
    """The request's URL with ``params`` replaced, absolute (``public_url`` when set); other parameters keep
    every value they were given (``?kind=a&kind=b``)."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in params]
    return url_with(request, [*kept, *((k, str(v)) for k, v in params.items())])


def url_with(request: Request, params: dict[str, str] | list[tuple[str, str]]) -> str:
    """The request's URL with exactly ``params`` as its query string.

    The path is the one the client sent (trailing slash, ``/environments/``), so connectors that check a
    ``next`` URL against their own base URL accept it.
    """
    base = request.app.state.services.settings.public_url
    root = base.rstrip("/") if base else f"{request.url.scheme}://{request.url.netloc}"
    path = request.scope.get("logpond_original_path", request.url.path)
    return f"{root}{path}?{urlencode(params)}"


def page_bounds(request: Request) -> tuple[int, int]:
    """DRF LimitOffset pagination's ``(limit, offset)`` from the query string."""
    try:
        limit = int(request.query_params.get("limit", DEFAULT_PAGE))
        offset = int(request.query_params.get("offset", 0))
    except ValueError:
        raise errors.validation_error("limit and offset must be integers.", attr="limit") from None
    return max(1, min(limit, MAX_PAGE)), max(0, offset)


def page_doc(request: Request, total: int, limit: int, offset: int, page: list[Any]) -> dict[str, Any]:
    """``{count, next, previous, results}`` with absolute ``next``/``previous`` URLs."""
    next_url = absolute_url(request, limit=limit, offset=offset + limit) if offset + limit < total else None
    previous_url = None
    if offset > 0:
        previous_url = absolute_url(request, limit=limit, offset=max(0, offset - limit))
    return {"count": total, "next": next_url, "previous": previous_url, "results": page}


def paginate(request: Request, items: list[Any]) -> dict[str, Any]:
    """DRF LimitOffset pagination of ``items`` with absolute ``next``/``previous`` URLs."""
    limit, offset = page_bounds(request)
    return page_doc(request, len(items), limit, offset, items[offset : offset + limit])


def user_basic(user: Any) -> dict[str, Any]:
    """PostHog's basic user object (``created_by`` and the like)."""
    return {
        "id": user.id,
        "uuid": user.uuid,
        "distinct_id": user.distinct_id,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_email_verified": True,
    }


def project_json(project: Any, level: int | None, *, detail: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": project.id,
        "uuid": project.uuid,
        "organization": project.organization_id,
        "project_id": project.id,
        "api_token": project.api_token,
        "name": project.name,
        "completed_snippet_onboarding": True,
        "has_completed_onboarding_for": None,
        "ingested_event": True,
        "is_demo": False,
        "timezone": project.timezone,
        "access_control": False,
        "effective_membership_level": level,
    }
    if detail:
        doc.update(
            {
                "created_at": _ts(project.created_at),
                "updated_at": _ts(project.updated_at),
                "group_types": [],
                "app_urls": [],
                "anonymize_ips": False,
                "test_account_filters": [],
                "primary_dashboard": None,
                "week_start_day": None,
                "secret_api_token": None,
                "modifiers": {},
            }
        )
    return doc


def organization_json(org: Any, level: int | None, projects: list[Any]) -> dict[str, Any]:
    return {
        "id": org.id,
        "name": org.name,
        "slug": org.slug,
        "logo_media_id": None,
        "created_at": _ts(org.created_at),
        "updated_at": _ts(org.updated_at),
        "membership_level": level,
        "plugins_access_level": 0,
        "teams": [project_json(p, level) for p in projects],
        "projects": [{"id": p.id, "name": p.name, "organization_id": org.id} for p in projects],
        "available_product_features": [],
        "metadata": {},
        "member_count": None,
        "members_can_use_personal_api_keys": True,
    }


def _visible_projects(
    meta: Any, principal: Principal, organization_ids: list[str] | None = None
) -> list[tuple[Any, int]]:
    """(project, membership level) pairs this key may see, ordered by id."""
    memberships = {m.organization.id: int(m.level) for m in meta.user_organizations(principal.user.id)}
    allowed_orgs = [
        o for o in memberships if not principal.key.scoped_organizations or o in principal.key.scoped_organizations
    ]
    if organization_ids is not None:
        allowed_orgs = [o for o in allowed_orgs if o in organization_ids]
    projects = meta.list_projects(allowed_orgs) if allowed_orgs else []
    scoped = principal.key.scoped_teams
    return [(p, memberships[p.organization_id]) for p in projects if not scoped or p.id in scoped]


@router.get("/projects", summary="List projects")
async def list_projects(request: Request) -> Response:
    principal = await authenticate(request)
    principal.check_scope("project:read")
    meta = request.app.state.services.meta
    pairs = await anyio.to_thread.run_sync(_visible_projects, meta, principal)
    search = request.query_params.get("search", "").lower()
    items = [project_json(p, level) for p, level in pairs if search in p.name.lower()]
    return json_response(paginate(request, items))


@router.get("/projects/{project_id}", summary="Retrieve a project")
async def get_project(project_id: str, request: Request) -> Response:
    access = await project_access(request, project_id, "project:read")
    meta = request.app.state.services.meta
    level = await anyio.to_thread.run_sync(
        meta.user_membership_level, access.principal.user.id, access.project.organization_id
    )
    return json_response(project_json(access.project, int(level) if level is not None else None, detail=True))


def _organizations(meta: Any, principal: Principal) -> list[dict[str, Any]]:
    out = []
    for membership in meta.user_organizations(principal.user.id):
        org = membership.organization
        if principal.key.scoped_organizations and org.id not in principal.key.scoped_organizations:
            continue
        projects = [
            p
            for p in meta.list_projects([org.id])
            if not principal.key.scoped_teams or p.id in principal.key.scoped_teams
        ]
        out.append(organization_json(org, int(membership.level), projects))
    return out


@router.get("/organizations", summary="List organisations")
async def list_organizations(request: Request) -> Response:
    principal = await authenticate(request)
    principal.check_scope("organization:read")
    orgs = await anyio.to_thread.run_sync(_organizations, request.app.state.services.meta, principal)
    return json_response(paginate(request, orgs))


@router.get("/organizations/{organization_id}", summary="Retrieve an organisation")
async def get_organization(organization_id: str, request: Request) -> Response:
    principal = await authenticate(request)
    principal.check_scope("organization:read")
    orgs = await anyio.to_thread.run_sync(_organizations, request.app.state.services.meta, principal)
    if organization_id == "@current":
        if not orgs:
            raise errors.not_found()
        return json_response(orgs[0])
    for org in orgs:
        if org["id"] == organization_id:
            return json_response(org)
    raise errors.not_found()


@router.get("/organizations/{organization_id}/projects", summary="List an organisation's projects")
async def list_organization_projects(organization_id: str, request: Request) -> Response:
    principal = await authenticate(request)
    principal.check_scope("project:read")
    meta = request.app.state.services.meta
    pairs = await anyio.to_thread.run_sync(_visible_projects, meta, principal, [organization_id])
    return json_response(paginate(request, [project_json(p, level) for p, level in pairs]))


@router.get("/users/@me", summary="The current user")
async def current_user(request: Request) -> Response:
    principal = await authenticate(request)
    principal.check_scope("user:read")
    services = request.app.state.services

    def build() -> dict[str, Any]:
        meta = services.meta
        user = principal.user
        orgs = _organizations(meta, principal)
        pairs = _visible_projects(meta, principal)
        team = project_json(*pairs[0]) if pairs else None
        return {
            **user_basic(user),
            "is_staff": user.is_staff,
            "date_joined": _ts(user.date_joined),
            "team": team,
            "organization": orgs[0] if orgs else None,
            "organizations": [
                {
                    k: o[k]
                    for k in (
                        "id",
                        "name",
                        "slug",
                        "logo_media_id",
                        "membership_level",
                        "members_can_use_personal_api_keys",
                    )
                }
                for o in orgs
            ],
        }

    return json_response(await anyio.to_thread.run_sync(build))


@router.get("/personal_api_keys/@current", summary="The personal API key making this request")
async def current_key(request: Request) -> Response:
    principal = await authenticate(request)
    key = principal.key
    return json_response(
        {
            "id": key.id,
            "label": key.label,
            "value": None,
            "mask_value": key.mask_value,
            "created_at": _ts(key.created_at),
            "last_used_at": _ts(key.last_used_at),
            "user_id": principal.user.id,
            "scopes": list(key.scopes),
            "scoped_teams": list(key.scoped_teams) if key.scoped_teams else None,
            "scoped_organizations": list(key.scoped_organizations) if key.scoped_organizations else None,
            "last_rolled_at": _ts(key.last_rolled_at),
        }
    )
