"""PostHog's HogQL grammar, through the ``hogql-parser`` package, behind a guard.

``hogql_parser`` is PostHog's C++ parser. Two things make it awkward to call directly:

- Importing it imports ``posthog.hogql.errors``, a module of PostHog's server, not of the ``posthog`` SDK
  that our users (and our tests) also import. ``import_hogql_parser`` supplies a stand-in for exactly the
  time of the import and leaves ``sys.modules`` as it found it, so the real SDK imports afterwards.
- Its ANTLR grammar backtracks exponentially on some nesting: twenty-five nested parentheses take 45 s of
  CPU, sixty ``NOT``s in a row 3 s, two hundred over 30 s — and it holds the GIL throughout. Its prediction
  cache, shared by every parse of a process, also makes each deeper nesting of a shape seen before slower
  than in a fresh process. So ``ParserPool`` parses in worker processes, kills a worker that takes longer
  than the parse timeout, and replaces one that needed long or has parsed many queries. Cheap checks on
  length and bracket depth reject the worst inputs before they reach a worker.

The ``parse_*_json`` functions return PostHog's AST as JSON; a syntax error comes back as
``{"error": true, "message", "start", "end"}``, which becomes ``HogQLSyntaxError`` with line and column.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
import types
from collections import OrderedDict
from multiprocessing.connection import Connection
from typing import Any

import orjson

from logpond.hogql.errors import HogQLQueryError, HogQLSyntaxError

_STAND_IN_MODULES = ("posthog", "posthog.hogql", "posthog.hogql.errors")

_UNSUPPORTED_CLAUSES = {"Unsupported: SelectStmt.settingsClause()": "SETTINGS"}

MAX_QUERY_CHARS = 64 * 1024
MAX_BRACKET_DEPTH = 32


def _stand_in_errors() -> types.ModuleType:
    module = types.ModuleType("posthog.hogql.errors")

    class HogQLError(Exception):
        def __init__(self, message: str, *, start: int | None = None, end: int | None = None, **_: Any) -> None:
            super().__init__(message)
            self.start = start
            self.end = end

    class SyntaxError(HogQLError):  # noqa: A001 - the name the parser looks up
        pass

    class NotImplementedError(HogQLError):  # noqa: A001
        pass

    class ParsingError(HogQLError):
        pass

    module.HogQLError = HogQLError  # type: ignore[attr-defined]
    module.SyntaxError = SyntaxError  # type: ignore[attr-defined]
    module.NotImplementedError = NotImplementedError  # type: ignore[attr-defined]
    module.ParsingError = ParsingError  # type: ignore[attr-defined]
    return module


def import_hogql_parser() -> types.ModuleType:
    """Import ``hogql_parser`` with a stand-in ``posthog.hogql.errors``; ``sys.modules`` ends as it began."""
    if "hogql_parser" in sys.modules:
        return sys.modules["hogql_parser"]
    missing = object()
    saved = {name: sys.modules.get(name, missing) for name in _STAND_IN_MODULES}
    errors = _stand_in_errors()
    hogql = types.ModuleType("posthog.hogql")
    hogql.errors = errors  # type: ignore[attr-defined]
    if saved["posthog"] is missing:
        stand_in = types.ModuleType("posthog")
        stand_in.__path__ = []  # a package, so the submodules resolve
        stand_in.hogql = hogql  # type: ignore[attr-defined]
        sys.modules["posthog"] = stand_in
    sys.modules["posthog.hogql"] = hogql
    sys.modules["posthog.hogql.errors"] = errors
    try:
        import hogql_parser

        return hogql_parser
    finally:
        for name, module in saved.items():
            if module is missing:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module  # type: ignore[assignment]


def check_shape(text: str) -> None:
    """Reject what the grammar cannot parse in reasonable time: very long text and deep bracket nesting."""
    if len(text) > MAX_QUERY_CHARS:
        raise HogQLSyntaxError(f"The query is {len(text)} characters long; the limit is {MAX_QUERY_CHARS}.")
    depth = deepest = 0
    quote: str | None = None
    escaped = False
    for position, ch in enumerate(text):
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "'\"`":
            quote = ch
        elif ch in "([{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_BRACKET_DEPTH:
                    raise HogQLSyntaxError(
                        f"Brackets are nested more than {MAX_BRACKET_DEPTH} deep", text=text, start=position
                    )
        elif ch in ")]}":
            depth = max(0, depth - 1)


def decode(raw: str, text: str) -> dict[str, Any]:
    """The parser's JSON as a dict; its error object as ``HogQLSyntaxError``."""
    doc = orjson.loads(raw)
    if isinstance(doc, dict) and doc.get("error"):
        start = doc.get("start") or {}
        message = str(doc.get("message") or "")
        if doc.get("type") == "NotImplementedError":
            # the grammar knows the clause but PostHog's parser does not build it (e.g. SETTINGS)
            clause = _UNSUPPORTED_CLAUSES.get(message, message.removeprefix("Unsupported: "))
            raise HogQLQueryError(f"{clause} is not supported", text=text, start=start.get("offset") or None)
        raise HogQLSyntaxError(
            str(doc.get("message") or "Syntax error"),
            text=text,
            start=start.get("offset") if isinstance(start, dict) else None,
        )
    if not isinstance(doc, dict):
        raise HogQLSyntaxError("The parser returned no query", text=text)
    return doc


def parse_in_process(kind: str, text: str) -> str:
    parser = import_hogql_parser()
    function = parser.parse_select_json if kind == "select" else parser.parse_expr_json
    return function(text)  # type: ignore[no-any-return]


def _worker(conn: Connection, parent_pid: int) -> None:
    """A parser process: answer (kind, text) requests with the parser's JSON, until the parent is gone."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    import_hogql_parser()
    conn.send(("ready", ""))
    while True:
        try:
            kind, text = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send(("ok", parse_in_process(kind, text)))
        except Exception as exc:  # the parser raised instead of returning its error object
            conn.send(("error", str(exc)))


class _Worker:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_worker, args=(child, os.getpid()), name="logpond-hogql-parser", daemon=True
        )
        self.process.start()
        child.close()
        self.ready = False
        self.parses = 0

    def wait_ready(self, timeout: float) -> None:
        if not self.ready:
            if not self.conn.poll(timeout):
                raise TimeoutError("parser worker did not start")
            self.conn.recv()
            self.ready = True

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.conn.close()


class ParserPool:
    """Parses HogQL in worker processes, each parse bounded by ``timeout`` seconds, with a cache by text.

    ``processes=0`` parses in the calling process, without the timeout (for the CLI and tests).
    """

    def __init__(
        self,
        processes: int = 1,
        timeout: float = 2.0,
        cache_size: int = 1024,
        recycle_seconds: float = 0.25,
        recycle_parses: int = 500,
    ) -> None:
        self.processes = processes
        self.timeout = timeout
        self.recycle_seconds = recycle_seconds
        self.recycle_parses = recycle_parses
        self._idle: list[_Worker] = []
        self._started = 0
        self._cond = threading.Condition()
        self._cache: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self.closed = False

    def parse_select(self, text: str) -> dict[str, Any]:
        return self._parse("select", text)

    def parse_expr(self, text: str) -> dict[str, Any]:
        return self._parse("expr", text)

    def _parse(self, kind: str, text: str) -> dict[str, Any]:
        key = (kind, text)
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        check_shape(text)
        raw = parse_in_process(kind, text) if self.processes <= 0 else self._parse_in_worker(kind, text)
        doc = decode(raw, text)
        with self._cache_lock:
            self._cache[key] = doc
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return doc

    def _take(self) -> _Worker:
        with self._cond:
            while True:
                if self.closed:
                    raise RuntimeError("the HogQL parser pool is closed")
                if self._idle:
                    return self._idle.pop()
                if self._started < self.processes:
                    self._started += 1
                    break
                self._cond.wait()
        try:
            worker = _Worker()
            worker.wait_ready(30)
            return worker
        except BaseException:
            self._give_back(None)
            raise

    def _give_back(self, worker: _Worker | None) -> None:
        with self._cond:
            if worker is None:
                self._started -= 1
            else:
                self._idle.append(worker)
            self._cond.notify()

    def _replace(self, worker: _Worker) -> None:
        """Retire ``worker`` and start its successor in the background."""
        worker.kill()
        self._give_back(None)
        threading.Thread(target=self.warm_up, name="hogql-parser-respawn", daemon=True).start()

    def _parse_in_worker(self, kind: str, text: str) -> str:
        worker = self._take()
        started = time.monotonic()
        try:
            worker.conn.send((kind, text))
            if not worker.conn.poll(self.timeout):
                self._replace(worker)
                raise HogQLSyntaxError(
                    f"The query took longer than {self.timeout:g} s to parse. Deeply nested expressions are slow "
                    "to parse: flatten them, e.g. with intermediate aliases."
                )
            status, payload = worker.conn.recv()
        except (EOFError, OSError) as exc:
            self._replace(worker)
            raise HogQLSyntaxError("The HogQL parser failed on this query") from exc
        worker.parses += 1
        if time.monotonic() - started > self.recycle_seconds or worker.parses >= self.recycle_parses:
            # the grammar's shared prediction cache makes later deeply nested queries ever slower to
            # parse: a worker that needed long, or parsed many queries, is replaced by a fresh one
            self._replace(worker)
        else:
            self._give_back(worker)
        if status != "ok":
            raise HogQLSyntaxError(payload or "Syntax error", text=text)
        return payload  # type: ignore[no-any-return]

    def warm_up(self) -> None:
        """Start a worker now, if the pool has room for one, rather than on the next query."""
        with self._cond:
            if self.processes <= 0 or self.closed or self._started >= self.processes:
                return
            self._started += 1
        try:
            worker = _Worker()
            worker.wait_ready(30)
        except BaseException:
            self._give_back(None)
            raise
        with self._cond:
            closed = self.closed
        if closed:
            worker.kill()
            self._give_back(None)
        else:
            self._give_back(worker)

    def close(self) -> None:
        with self._cond:
            self.closed = True
            workers, self._idle = self._idle, []
            self._cond.notify_all()
        for worker in workers:
            worker.kill()
