"""Who is calling, and may they touch this project?

Personal API keys are looked for where PostHog looks, in order: ``Authorization: Bearer``, the JSON
body's ``personal_api_key``, then ``?personal_api_key=``; only the first one found is tried. Verified keys
and project tokens are cached for ``auth_cache_seconds`` so a query costs no metadata round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import orjson
from fastapi import Request

from logpond.api import errors
from logpond.api.bodies import MAX_API_BODY_BYTES, read_body_limited
from logpond.meta.scopes import has_scope


@dataclass(frozen=True)
class Principal:
    user: Any
    key: Any  # the PersonalAPIKey record; None for session-style callers (not offered yet)

    def check_scope(self, required: str) -> None:
        if not has_scope(list(self.key.scopes), required):
            raise errors.permission_denied(f"API key missing required scope '{required}'")


@dataclass(frozen=True)
class ProjectAccess:
    project: Any
    principal: Principal

    @property
    def team_id(self) -> int:
        return int(self.project.id)


class TTLCache:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._items: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any:
        hit = self._items.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: Any, value: Any) -> None:
        if len(self._items) > 10_000:
            self._items.clear()
        self._items[key] = (time.monotonic() + self.ttl, value)

    def clear(self) -> None:
        self._items.clear()


async def cached_lookup(cache: TTLCache, key: Any, lookup: Callable[..., Any], *args: Any) -> Any:
    """``lookup(*args)`` in a worker thread, remembered in ``cache`` when it found something."""
    value = cache.get(key)
    if value is None:
        value = await anyio.to_thread.run_sync(lookup, *args)
        if value is not None:
            cache.put(key, value)
    return value


async def _find_personal_key(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value and not value.startswith(("pha_", "phc_")):
            return value, "Authorization header"
    if request.method in ("POST", "PUT", "PATCH") and "json" in request.headers.get("content-type", "json"):
        # bounded: this runs before authentication, so it must not buffer an arbitrary upload
        body = await read_body_limited(request, MAX_API_BODY_BYTES) or b""
        if body and b"personal_api_key" in body:
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError:
                doc = None
            if isinstance(doc, dict) and isinstance(doc.get("personal_api_key"), str):
                return doc["personal_api_key"], "body"
    from_query = request.query_params.get("personal_api_key")
    if from_query:
        return from_query, "query string"
    return None


async def authenticate(request: Request) -> Principal:
    services = request.app.state.services
    found = await _find_personal_key(request)
    if found is None:
        raise errors.not_authenticated()
    plain, source = found
    result = await cached_lookup(
        services.auth_cache, ("key", plain), services.meta.authenticate_personal_api_key, plain
    )
    if result is None:
        raise errors.authentication_failed(f"Personal API key found in request {source} is invalid.")
    key, user = result
    return Principal(user=user, key=key)


def parse_project_id(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise errors.not_found("Project not found.")
    return int(raw)


async def project_access(request: Request, raw_project_id: str, scope: str) -> ProjectAccess:
    """Authenticate, find the project, and check scope, key restrictions and membership."""
    principal = await authenticate(request)
    services = request.app.state.services
    if raw_project_id == "@current":
        project = await anyio.to_thread.run_sync(_current_project, services, principal)
    else:
        project_id = parse_project_id(raw_project_id)
        project = await cached_lookup(services.project_cache, project_id, services.meta.get_project, project_id)
    if project is None:
        raise errors.not_found("Project not found.")
    principal.check_scope(scope)
    scoped_teams = principal.key.scoped_teams
    if scoped_teams and project.id not in scoped_teams:
        raise errors.permission_denied(f"API key does not have access to the requested project: ID {project.id}.")
    scoped_orgs = principal.key.scoped_organizations
    if scoped_orgs and str(project.organization_id) not in scoped_orgs:
        raise errors.permission_denied(
            f"API key does not have access to the requested organization: ID {project.organization_id}."
        )
    level = await cached_lookup(
        services.auth_cache,
        ("member", principal.user.id, project.organization_id),
        services.meta.user_membership_level,
        principal.user.id,
        project.organization_id,
    )
    if level is None:
        raise errors.permission_denied("You don't have access to the project.")
    return ProjectAccess(project=project, principal=principal)


def _current_project(services: Any, principal: Principal) -> Any:
    scoped = principal.key.scoped_teams
    if scoped:
        return services.meta.get_project(scoped[0])
    for membership in services.meta.user_organizations(principal.user.id):
        projects = services.meta.list_projects([membership.organization.id])
        if projects:
            return projects[0]
    return None


async def project_for_token(request: Request, token: str) -> Any:
    """The project owning a public project token, or None."""
    services = request.app.state.services
    return await cached_lookup(services.auth_cache, ("token", token), services.meta.get_project_by_token, token)
