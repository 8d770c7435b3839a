"""LogsQuery: PostHog's log search, with cursors and newest-slice-first scanning.

A page asks for ``limit`` rows (default 1000, at most 2000) and fetches one more to know ``hasMore``. The
``after`` cursor is base64 JSON ``{"timestamp", "uuid"}`` of the last row returned; the next page continues
strictly past ``(timestamp, uuid)`` in the requested order, so rows sharing one timestamp are neither
repeated nor skipped. Long ranges are scanned in slices from the sort edge (3 minutes, then an hour, then
six hours, then the rest) and stop as soon as the page is full, so the newest page of a 30-day search
reads only the newest data.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

import orjson

from logpond.logs.dates import MAX_DATE, MIN_DATE, ch_datetime_to_iso, iso
from logpond.logs.filters import FilterError, LogsFilters, filter_conditions, parse_filters, time_conditions
from logpond.query import ast
from logpond.query.ast import Compare, CompareOperator, Constant, Field, OrderExpr, Select, Tuple, and_, call

DEFAULT_LIMIT = 1000
MAX_LIMIT = 2000
MAX_EXPORTABLE_LOGS = 10_000

ROW_FIELDS = (
    "uuid",
    "trace_id",
    "span_id",
    "body",
    "attributes",
    "timestamp",
    "observed_timestamp",
    "severity_text",
    "severity_number",
    "resource_attributes",
    "resource_fingerprint",
    "instrumentation_scope",
    "event_name",
)


@dataclass
class LogsQuery:
    filters: LogsFilters
    order: str  # "latest" | "earliest"
    limit: int
    after: tuple[dt.datetime, str] | None
    live_checkpoint: dt.datetime | None
    exclude_attributes: bool
    open_ended: bool = True  # no date_to was given: the range runs until now (or, live, without end)


def encode_cursor(timestamp_iso: str, uuid: str) -> str:
    return base64.b64encode(orjson.dumps({"timestamp": timestamp_iso, "uuid": uuid})).decode()


def decode_cursor(cursor: Any) -> tuple[dt.datetime, str]:
    if not isinstance(cursor, str):
        raise FilterError("Cursor must be a string returned as nextCursor.", "after")
    try:
        doc = orjson.loads(base64.b64decode(cursor.encode(), validate=True))
        moment = dt.datetime.fromisoformat(str(doc["timestamp"]).replace("Z", "+00:00"))
        row_uuid = str(uuidlib.UUID(str(doc["uuid"])))
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise FilterError("Malformed cursor: expected the nextCursor of a previous response.", "after") from None
    return _in_range(moment, "after"), row_uuid


def _in_range(moment: dt.datetime, attr: str) -> dt.datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    try:
        moment = moment.astimezone(dt.UTC)
    except OverflowError:
        raise FilterError("Timestamp out of range.", attr) from None
    if not MIN_DATE <= moment <= MAX_DATE:
        raise FilterError("Timestamp out of range (years 1900 to 2299).", attr)
    return moment


def parse_logs_query(doc: Any, *, now: dt.datetime) -> LogsQuery:
    if not isinstance(doc, dict):
        raise FilterError("Expected an object.", "query")
    filters = parse_filters(doc, now=now)
    order = doc.get("orderBy") or "latest"
    if order not in ("latest", "earliest"):
        order = "latest"  # as PostHog: an unknown order falls back to newest first
    limit = doc.get("limit")
    if limit is None:
        limit = DEFAULT_LIMIT
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise FilterError("limit must be a positive integer.", "limit")
    after = decode_cursor(doc["after"]) if doc.get("after") else None
    checkpoint = None
    raw_checkpoint = doc.get("liveLogsCheckpoint")
    if raw_checkpoint is not None and raw_checkpoint != "":
        # a string only: str() of a JSON number such as 20260101 would parse as a date
        if not isinstance(raw_checkpoint, str):
            raise FilterError("liveLogsCheckpoint must be an ISO 8601 timestamp string.", "liveLogsCheckpoint")
        try:
            checkpoint = dt.datetime.fromisoformat(raw_checkpoint.replace("Z", "+00:00"))
        except ValueError:
            raise FilterError("Invalid liveLogsCheckpoint timestamp.", "liveLogsCheckpoint") from None
        checkpoint = _in_range(checkpoint, "liveLogsCheckpoint")
    exclude = doc.get("excludeAttributes", False)
    date_range = doc.get("dateRange")
    return LogsQuery(
        open_ended=not (isinstance(date_range, dict) and date_range.get("date_to")),
        filters=filters,
        order=order,
        limit=min(limit, MAX_LIMIT),
        after=after,
        live_checkpoint=checkpoint,
        exclude_attributes=bool(exclude),
    )


def _slices(
    date_from: dt.datetime | None, date_to: dt.datetime, order: str
) -> list[tuple[dt.datetime | None, dt.datetime]]:
    """Time windows to scan in order, from the sort edge inward (spec §3.4 step 4).

    PostHog's steps (3 minutes, an hour, six hours, the rest) plus a 12-minute one: a common search term
    fills a page within the first quarter hour, and without it the second query would read a whole hour.
    """
    date_from_eff = date_from if date_from is not None else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    span = date_to - date_from_eff
    steps: list[dt.timedelta] = []
    if span > dt.timedelta(minutes=20):
        steps.append(dt.timedelta(minutes=3))
    if span > dt.timedelta(hours=1):
        steps.append(dt.timedelta(minutes=12))
    if span > dt.timedelta(hours=4):
        steps.append(dt.timedelta(hours=1))
    if span > dt.timedelta(hours=24):
        steps.append(dt.timedelta(hours=6))
    windows: list[tuple[dt.datetime | None, dt.datetime]] = []
    if order == "latest":
        edge = date_to
        for step in steps:
            windows.append((edge - step, edge))
            edge = edge - step
        windows.append((date_from, edge))
    else:
        edge = date_from_eff
        for step in steps:
            windows.append((edge, edge + step))
            edge = edge + step
        windows.append((edge, date_to))
    return windows


class LogsQueryRunner:
    """Builds the query trees for one LogsQuery and turns store rows into PostHog LogRows."""

    def __init__(self, execute: Any, *, now: dt.datetime, checkpoint: dt.datetime) -> None:
        # execute(select) -> QueryResult, already bound to the project and its limits; ``checkpoint`` is
        # the ingestion watermark read before any query runs: every log observed before it is stored
        self.execute = execute
        self.now = now
        self.checkpoint = checkpoint

    def run(self, query: LogsQuery) -> dict[str, Any]:
        if query.live_checkpoint is not None:
            return self._run_live(query, query.live_checkpoint)
        filters = query.filters
        wanted = query.limit + 1
        date_from, date_to = filters.date_from, filters.date_to or self.now
        if query.after is not None:
            ts, _ = query.after
            if query.order == "latest":
                date_to = min(date_to, ts + dt.timedelta(microseconds=1))
            else:
                date_from = max(date_from, ts) if date_from else ts
        base = filter_conditions(filters, include_time=False)
        # only logs observed before the checkpoint this page returns: the live tail that starts from that
        # checkpoint returns the later ones, so no log is both in the search and in the first poll
        extra: list[ast.Expr] = [Compare("<", Field("observed_timestamp"), Constant(self.checkpoint))]
        if query.after is not None:
            ts, row_uuid = query.after
            op: CompareOperator = "<" if query.order == "latest" else ">"
            extra.append(
                Compare(
                    op,
                    Tuple((Field("timestamp"), Field("uuid"))),
                    Tuple((Constant(ts), call("toUUID", Constant(row_uuid)))),
                )
            )
        windows = _slices(date_from, date_to, query.order)
        rows: list[list[Any]] = []
        for window_from, window_to in windows:
            if window_from is not None and window_to <= window_from:
                continue
            where = and_(*time_conditions(window_from, window_to), base, *extra)
            result = self.execute(self._select(query, where, wanted - len(rows)))
            rows.extend(result.rows)
            if len(rows) >= wanted:
                break
        has_more = len(rows) > query.limit
        rows = rows[: query.limit]
        checkpoint = iso(self.checkpoint)
        results = [self._row(r, query.exclude_attributes, checkpoint) for r in rows]
        next_cursor = encode_cursor(results[-1]["timestamp"], results[-1]["uuid"]) if has_more and results else None
        return {"results": results, "hasMore": has_more, "nextCursor": next_cursor}

    def _run_live(self, query: LogsQuery, since: dt.datetime) -> dict[str, Any]:
        """Live tail: the logs observed in ``[since, checkpoint)``, each returned by exactly one poll.

        Every log observed before the checkpoint is already stored, and the next poll starts at the
        checkpoint this one returns, so polls tile observed time. When more than ``limit`` logs arrived,
        the page ends at an observed time, and the checkpoint returned is that time, so the rest come next.
        """
        filters = query.filters
        date_to = None if query.open_ended else filters.date_to  # a late or future-stamped log still shows
        window = [
            *time_conditions(filters.date_from, date_to),
            filter_conditions(filters, include_time=False),
            Compare(">=", Field("observed_timestamp"), Constant(since)),
        ]
        upper = self.checkpoint
        rows = self.execute(
            self._select(
                query,
                and_(*window, Compare("<", Field("observed_timestamp"), Constant(upper))),
                query.limit + 1,
                by_observed=True,
            )
        ).rows
        has_more = len(rows) > query.limit
        if has_more:
            upper = _parse_ch(rows[query.limit][OBSERVED])
            rows = [r for r in rows if _parse_ch(r[OBSERVED]) < upper]
            if not rows:
                # more than a page observed in one microsecond (only concurrent requests share one):
                # return that whole microsecond rather than split it
                upper += dt.timedelta(microseconds=1)
                rows = self.execute(
                    self._select(
                        query,
                        and_(*window, Compare("<", Field("observed_timestamp"), Constant(upper))),
                        None,
                        by_observed=True,
                    )
                ).rows
        newest_first = query.order == "latest"
        rows.sort(key=lambda r: (r[TIMESTAMP], r[0]), reverse=newest_first)
        checkpoint = iso(max(upper, since))
        results = [self._row(r, query.exclude_attributes, checkpoint) for r in rows]
        return {"results": results, "hasMore": has_more, "nextCursor": None}

    @staticmethod
    def _select(query: LogsQuery, where: ast.Expr | None, limit: int | None, *, by_observed: bool = False) -> Select:
        direction = "DESC" if query.order == "latest" else "ASC"
        order: tuple[OrderExpr, ...] = (
            OrderExpr(Field("timestamp"), direction),  # type: ignore[arg-type]
            OrderExpr(Field("uuid"), direction),  # type: ignore[arg-type]
        )
        if by_observed:
            order = (OrderExpr(Field("observed_timestamp")), OrderExpr(Field("uuid")))
        return Select(
            select=tuple(Field(name) for name in ROW_FIELDS),
            from_=ast.JoinExpr(ast.TableRef("logs")),
            where=where,
            order_by=order,
            limit=limit,
        )

    def _row(self, r: list[Any], exclude_attributes: bool, checkpoint: str) -> dict[str, Any]:
        (
            row_uuid,
            trace_id,
            span_id,
            body,
            attributes,
            timestamp,
            observed,
            severity_text,
            severity_number,
            resource_attributes,
            fingerprint,
            scope,
            event_name,
        ) = r
        return {
            "uuid": row_uuid,
            "timestamp": ch_datetime_to_iso(timestamp),
            "observed_timestamp": ch_datetime_to_iso(observed),
            "body": body,
            "severity_text": severity_text,
            "severity_number": severity_number,
            "level": severity_text,
            "trace_id": trace_id,
            "span_id": span_id,
            "attributes": {} if exclude_attributes else attributes,
            "resource_attributes": {} if exclude_attributes else resource_attributes,
            "resource_fingerprint": str(fingerprint),
            "instrumentation_scope": scope,
            "event_name": event_name,
            "live_logs_checkpoint": checkpoint,
        }


TIMESTAMP = ROW_FIELDS.index("timestamp")
OBSERVED = ROW_FIELDS.index("observed_timestamp")


def _parse_ch(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace(" ", "T")).replace(tzinfo=dt.UTC)


def count_select(filters: LogsFilters) -> Select:
    return Select(
        select=(ast.Alias(call("count"), "count"),),
        from_=ast.JoinExpr(ast.TableRef("logs")),
        where=filter_conditions(filters),
    )


def has_logs_select() -> Select:
    return Select(select=(Constant(1),), from_=ast.JoinExpr(ast.TableRef("logs")), limit=1)


def parse_query_body(body: Any, *, now: dt.datetime) -> tuple[dict[str, Any], LogsQuery]:
    if not isinstance(body, dict):
        raise FilterError("Expected a JSON object.", "query")
    doc = body.get("query")
    if not isinstance(doc, dict):
        raise FilterError("Expected an object with the LogsQuery.", "query")
    return doc, parse_logs_query(doc, now=now)
