"""Reading request bodies without trusting their size."""

from __future__ import annotations

from fastapi import Request

MAX_API_BODY_BYTES = 20 * 1024 * 1024  # PostHog's request cap for JSON API bodies


async def read_body_limited(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it exceeds ``limit`` bytes (nothing more is buffered).

    The body is kept on the request, so later readers (auth, then the endpoint) see it again.
    """
    cached: bytes | None = getattr(request, "_body", None)
    if cached is not None:
        return cached if len(cached) <= limit else None
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # Starlette's own cache: request.body() and request.stream() replay it
    return body
