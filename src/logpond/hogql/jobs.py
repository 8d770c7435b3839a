"""Queries in flight: the per-project concurrency limit, async queries, polling and cancellation.

Every HogQL query, blocking or async, is a ``QueryJob`` registered under its id while it runs, so
``DELETE .../query/<id>/`` can stop it: a queued job is taken out of the queue, a running one is killed in
the store (``Store.cancel``). A project runs at most ``max_running`` queries at once; more wait up to
``queue_seconds`` for a slot and are then refused (429). Finished async jobs are kept ``ttl`` seconds for
polling.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any


class ConcurrencyLimitExceeded(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many queries are running for this project.")
        self.retry_after = retry_after


class QueryCancelled(Exception):
    pass


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    text = value.astimezone(dt.UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


@dataclass
class QueryJob:
    id: str
    tag: str  # the store's handle for the running statement
    team_id: int
    is_async: bool
    start_time: dt.datetime
    pickup_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    running: bool = False
    cancelled: bool = False
    complete: bool = False
    results: dict[str, Any] | None = None
    error_message: str | None = None  # user-facing; set with error_status
    error_status: int | None = None
    task: asyncio.Task[Any] | None = None
    finished_at: float | None = None
    labels: list[str] = field(default_factory=list)

    def status(self, expiration: dt.datetime | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "team_id": self.team_id,
            "query_async": self.is_async,
            "complete": self.complete,
            "error": self.error_status is not None,
            "error_message": self.error_message,
            "results": self.results,
            "start_time": _iso(self.start_time),
            "pickup_time": _iso(self.pickup_time),
            "end_time": _iso(self.end_time),
            "expiration_time": _iso(expiration),
            "task_id": self.id,
            "query_progress": None,
            "labels": self.labels,
            "dashboard_id": None,
            "insight_id": None,
        }


class QueryJobs:
    def __init__(
        self,
        *,
        max_running: int,
        queue_seconds: float,
        ttl_seconds: float,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.max_running = max_running
        self.queue_seconds = queue_seconds
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._slots: dict[int, asyncio.Semaphore] = {}
        self._jobs: dict[tuple[int, str], QueryJob] = {}

    # --- the concurrency limit ---------------------------------------------------------------------
    @asynccontextmanager
    async def slot(self, job: QueryJob) -> AsyncIterator[None]:
        semaphore = self._slots.setdefault(job.team_id, asyncio.Semaphore(self.max_running))
        try:
            await asyncio.wait_for(semaphore.acquire(), timeout=self.queue_seconds)
        except TimeoutError:
            raise ConcurrencyLimitExceeded(retry_after=max(1, round(self.queue_seconds / 6))) from None
        try:
            if job.cancelled:
                raise QueryCancelled()
            job.running = True
            job.pickup_time = self.clock()
            yield
        finally:
            job.running = False
            semaphore.release()

    # --- the registry ------------------------------------------------------------------------------
    def register(self, job: QueryJob) -> None:
        self._expire()
        key = (job.team_id, job.id)
        existing = self._jobs.get(key)
        if existing is not None and not existing.complete:
            raise ValueError(f"A query with id {job.id} is already running")
        self._jobs[key] = job

    def get(self, team_id: int, query_id: str) -> QueryJob | None:
        self._expire()
        return self._jobs.get((team_id, query_id))

    def finish(self, job: QueryJob) -> None:
        job.complete = True
        job.end_time = self.clock()
        job.finished_at = time.monotonic()
        if not job.is_async:
            self._jobs.pop((job.team_id, job.id), None)

    def expiration(self, job: QueryJob) -> dt.datetime | None:
        if job.finished_at is None:
            return None
        return self.clock() + dt.timedelta(seconds=max(0.0, self.ttl_seconds - (time.monotonic() - job.finished_at)))

    def _expire(self) -> None:
        now = time.monotonic()
        for key, job in list(self._jobs.items()):
            if job.finished_at is not None and now - job.finished_at > self.ttl_seconds:
                del self._jobs[key]

    def running(self) -> list[QueryJob]:
        return [job for job in self._jobs.values() if not job.complete]


class RateLimiter:
    """PostHog's query rate limits per project: at most ``limit`` requests in any ``window`` seconds.

    Several windows apply together (a burst and a sustained rate). ``check`` records the request when every
    window has room, else raises ``RateLimited`` with the seconds until the fullest window frees a place.
    """

    def __init__(self, windows: list[tuple[int, float]], clock: Callable[[], float] = time.monotonic) -> None:
        self.windows = [(limit, window) for limit, window in windows if limit > 0]
        self.clock = clock
        self._seen: dict[int, deque[float]] = {}

    def check(self, team_id: int) -> None:
        if not self.windows:
            return
        now = self.clock()
        longest = max(window for _, window in self.windows)
        seen = self._seen.setdefault(team_id, deque())
        while seen and now - seen[0] >= longest:
            seen.popleft()
        wait = 0.0
        for limit, window in self.windows:
            inside = [t for t in seen if now - t < window] if len(seen) >= limit else []
            if len(inside) >= limit:
                wait = max(wait, inside[len(inside) - limit] + window - now)
        if wait > 0:
            raise RateLimited(max(1, math.ceil(wait)))
        seen.append(now)


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Request was throttled. Expected available in {retry_after} seconds.")
        self.retry_after = retry_after
