"""PostHog's (DRF's) error envelope: ``{"type", "code", "detail", "attr"}``, and the handlers that emit it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class APIError(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str,
        type: str,
        attr: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code
        self.type = type
        self.attr = attr
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"type": self.type, "code": self.code, "detail": self.detail, "attr": self.attr}


def validation_error(detail: str, attr: str | None = None, code: str = "invalid_input") -> APIError:
    return APIError(400, detail, code=code, type="validation_error", attr=attr)


def not_authenticated() -> APIError:
    return APIError(
        401,
        "Authentication credentials were not provided.",
        code="not_authenticated",
        type="authentication_error",
        headers={"WWW-Authenticate": 'Bearer realm="api"'},
    )


def authentication_failed(detail: str) -> APIError:
    return APIError(
        401,
        detail,
        code="authentication_failed",
        type="authentication_error",
        headers={"WWW-Authenticate": 'Bearer realm="api"'},
    )


def permission_denied(detail: str) -> APIError:
    return APIError(403, detail, code="permission_denied", type="authentication_error")


def not_found(detail: str = "Not found.") -> APIError:
    return APIError(404, detail, code="not_found", type="invalid_request")


def throttled(detail: str, retry_after: int) -> APIError:
    return APIError(429, detail, code="throttled", type="throttled_error", headers={"Retry-After": str(retry_after)})


def server_error(detail: str = "A server error occurred.", status: int = 500) -> APIError:
    return APIError(status, detail, code="error", type="server_error")


def _attr_from_loc(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return "__".join(parts) or None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> Response:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        loc = tuple(first.get("loc", ()))
        if first.get("type") == "json_invalid":
            return JSONResponse(
                {
                    "type": "invalid_request",
                    "code": "parse_error",
                    "detail": f"JSON parse error - {first.get('ctx', {}).get('error', 'invalid JSON')}",
                    "attr": None,
                },
                status_code=400,
            )
        message = first.get("msg", "Invalid input.")
        return JSONResponse(validation_error(message, _attr_from_loc(loc)).body(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            body = not_found().body()
        elif exc.status_code == 405:
            body = {
                "type": "invalid_request",
                "code": "method_not_allowed",
                "detail": f'Method "{request.method}" not allowed.',
                "attr": None,
            }
        else:
            body = {
                "type": "invalid_request" if exc.status_code < 500 else "server_error",
                "code": "error",
                "detail": str(exc.detail),
                "attr": None,
            }
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(server_error().body(), status_code=500)
