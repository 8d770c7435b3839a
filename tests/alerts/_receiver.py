"""A real HTTP endpoint on 127.0.0.1 for notification tests: records what arrives, answers as told.

    with Receiver() as rx:
        rx.respond_with(500, times=2)          # the next two requests fail, later ones get the default
        ... deliver to f"{rx.url}/hook" ...
        [request] = rx.wait_for(1)

By default a request gets 200 ``ok`` (Slack's incoming-webhook answer), or ``{"ok": true}`` on
``/api/chat.postMessage`` (Slack's Web API; point ``DeliverySettings.slack_api_url`` at ``rx.slack_api_url``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import orjson

SLACK_POST_MESSAGE_PATH = "/api/chat.postMessage"


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any  # the body parsed as JSON, None when it is not JSON


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...]
    delay: float


class Receiver:
    """A threaded HTTP server on a free loopback port; a context manager."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._requests: list[ReceivedRequest] = []
        self._planned: deque[_Answer] = deque()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def slack_api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def requests(self) -> list[ReceivedRequest]:
        """What has arrived so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def respond_with(
        self,
        status: int,
        body: bytes | str | dict[str, Any] | list[Any] = b"",
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` requests (after those already planned) with this, after ``delay`` seconds.

        A dict or list body is sent as JSON.
        """
        if isinstance(body, dict | list):
            raw, content_type = orjson.dumps(body), "application/json"
        else:
            raw = body.encode() if isinstance(body, str) else body
            content_type = "text/plain; charset=utf-8"
        answer = _Answer(status, raw, content_type, tuple((headers or {}).items()), delay)
        with self._lock:
            self._planned.extend([answer] * times)

    def slack_error(self, error: str, *, times: int = 1) -> None:
        """Answer the next ``times`` requests the way chat.postMessage reports a failure."""
        self.respond_with(200, {"ok": False, "error": error}, times=times)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """The requests once at least ``n`` have arrived; AssertionError if they have not within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {n} requests within {timeout} s, got {len(self._requests)}")
                self._lock.wait(left)
            return list(self._requests)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()  # wakes handlers that are delaying their answer
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    # --- the server side -------------------------------------------------------------------------------

    def _record(self, request: ReceivedRequest) -> _Answer:
        with self._lock:
            self._requests.append(request)
            self._lock.notify_all()
            if self._planned:
                return self._planned.popleft()
        if request.path.split("?", 1)[0] == SLACK_POST_MESSAGE_PATH:
            return _Answer(200, b'{"ok":true}', "application/json", (), 0.0)
        return _Answer(200, b"ok", "text/plain; charset=utf-8", (), 0.0)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    parsed = orjson.loads(body) if body else None
                except orjson.JSONDecodeError:
                    parsed = None
                request = ReceivedRequest(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    json=parsed,
                )
                answer = receiver._record(request)
                if answer.delay and receiver._closing.wait(answer.delay):
                    return
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", answer.content_type)
                    self.send_header("Content-Length", str(len(answer.body)))
                    for name, value in answer.headers:
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:  # the client gave up waiting (a timeout test)
                    self.close_connection = True

            do_POST = do_PUT = do_GET = _handle

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

        return Handler
