"""Log alerts: ``POST /api/projects/<id>/logs/alerts/simulate/`` (scope ``logs:read``).

Simulate replays a rule over the last days of stored logs (``logpond.alerts.simulate``). Alert CRUD, the
scheduler and destinations are not built yet.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from logpond.alerts.simulate import SimulateError, parse_request, simulate
from logpond.api import errors
from logpond.api.auth import project_access
from logpond.api.logs import json_body, json_response, run_in_store
from logpond.logs.aggregates import LogCounter

router = APIRouter(prefix="/api/projects/{project_id}/logs/alerts", tags=["alerts"])


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
