"""Log exports: a LogsQuery's rows written to a CSV or JSON Lines file, at most 10,000 of them.

The rows come from the same ``LogsQueryRunner`` the search uses, a page at a time (at most ``PAGE_SIZE``
rows, about ``PAGE_TARGET_BYTES``) walked with its ``after`` cursor, and each page goes to disk before the
next is fetched, so memory holds one page whatever the export's size. Rows keep the query's order.

Columns are LogRow fields plus ``service_name`` (the resource's ``service.name``), or single attributes
as ``attributes.<key>`` / ``resource_attributes.<key>``; anything else is refused rather than written as
an empty column. CSV cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or
carriage return) get a leading ``'``, as PostHog's exporter does, because log bodies are written by
whoever holds the project token. JSON Lines rows are exact.
"""

from __future__ import annotations

import abc
import csv
import dataclasses
import datetime as dt
import os
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from logpond.logs.filters import FilterError
from logpond.logs.query import MAX_EXPORTABLE_LOGS, LogsQuery, decode_cursor

CSV = "text/csv"
JSONL = "application/x-ndjson"  # PostHog's ExportFormat.JSONL
FORMATS: dict[str, str] = {CSV: "csv", JSONL: "jsonl"}  # MIME type -> file extension
DEFAULT_FORMAT = CSV

# Pages are sized by bytes, not rows: decoding a store result briefly takes about fifteen times its size
# (the JSON parser's value pool), so a page of 1000 rows of 4 KB would peak near 60 MB. The first page is
# small; each next one holds about PAGE_TARGET_BYTES of the rows seen so far, at most PAGE_SIZE rows.
PAGE_SIZE = 1000
FIRST_PAGE_SIZE = 100
PAGE_TARGET_BYTES = 512 * 1024
MAX_COLUMNS = 200
MAX_COLUMN_LENGTH = 1000

# What a column may name; service_name is not a LogRow field but every exporter wants it.
FIELDS: tuple[str, ...] = (
    "uuid",
    "timestamp",
    "observed_timestamp",
    "severity_text",
    "level",
    "severity_number",
    "service_name",
    "body",
    "trace_id",
    "span_id",
    "attributes",
    "resource_attributes",
    "resource_fingerprint",
    "instrumentation_scope",
    "event_name",
)
DEFAULT_COLUMNS: tuple[str, ...] = tuple(name for name in FIELDS if name != "level")  # level = severity_text
ATTRIBUTE_PREFIXES = ("attributes.", "resource_attributes.")

_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def parse_export_format(value: Any) -> str:
    """The requested MIME type (None: CSV); anything else is a 400 on ``export_format``."""
    if value is None:
        return DEFAULT_FORMAT
    if not isinstance(value, str) or value not in FORMATS:
        raise FilterError(f"export_format must be one of: {', '.join(FORMATS)}.", "export_format")
    return value


def parse_columns(value: Any) -> tuple[str, ...]:
    """The requested columns in order (None or empty: ``DEFAULT_COLUMNS``); a bad one is a 400 on ``columns``."""
    if value is None or value == []:
        return DEFAULT_COLUMNS
    if not isinstance(value, list):
        raise FilterError("columns must be a list of column names.", "columns")
    if len(value) > MAX_COLUMNS:
        raise FilterError(f"At most {MAX_COLUMNS} columns can be exported.", "columns")
    for name in value:
        if not isinstance(name, str) or not name or len(name) > MAX_COLUMN_LENGTH:
            raise FilterError("columns must be a list of column names.", "columns")
        if name in FIELDS:
            continue
        prefix = next((p for p in ATTRIBUTE_PREFIXES if name.startswith(p)), None)
        if prefix is None or len(name) == len(prefix):
            raise FilterError(
                f"Unknown column {name!r}: use one of {', '.join(FIELDS)}, "
                "or attributes.<key> / resource_attributes.<key>.",
                "columns",
            )
    return tuple(value)


def check_exportable(query: LogsQuery) -> None:
    """A live-tail query (``liveLogsCheckpoint``) pages by arrival, not by the cursor; it is refused."""
    if query.live_checkpoint is not None:
        raise FilterError(
            "A live tail cannot be exported: drop liveLogsCheckpoint and export its date range.", "liveLogsCheckpoint"
        )


# --- file names ----------------------------------------------------------------------------------------------


def filename_stem(query_doc: Mapping[str, Any], today: dt.date) -> str:
    """PostHog's name for a logs export: ``logs-<service or all-services>-<date range or today>``."""
    services = query_doc.get("serviceNames") or []
    if len(services) == 1:
        service_part = re.sub(r"[^a-zA-Z0-9_-]", "-", str(services[0]))[:50]
    elif len(services) > 1:
        service_part = f"{len(services)}-services"
    else:
        service_part = "all-services"
    date_range = query_doc.get("dateRange") or {}
    date_from = str(date_range.get("date_from") or "")[:10]
    date_to = str(date_range.get("date_to") or "")[:10]
    if date_from and date_to:
        date_part = f"{date_from}-to-{date_to}"
    elif date_from:
        date_part = f"from-{date_from}"
    else:
        date_part = today.isoformat()
    return f"logs-{service_part}-{date_part}"


def slugify(text: str) -> str:
    """Django's slugify: ASCII letters, digits, ``_`` and single hyphens, lower case."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text.lower())
    return re.sub(r"[-\s]+", "-", text).strip("-_")


def download_filename(stem: str, created_at: dt.datetime, export_format: str) -> str:
    """``<slug>-<YYYY-MM-DD-HHMMSS>.<ext>``, as PostHog names an ExportedAsset's file."""
    slug = slugify(stem) or "export"
    return f"{slug}-{created_at.astimezone(dt.UTC):%Y-%m-%d-%H%M%S}.{FORMATS[export_format]}"


def content_file_name(asset_id: int, export_format: str) -> str:
    """The file's name inside the exports directory."""
    return f"{asset_id}.{FORMATS[export_format]}"


# --- writing -------------------------------------------------------------------------------------------------


def _cell(row: Mapping[str, Any], column: str, exclude_attributes: bool) -> Any:
    if column == "service_name":
        return row["resource_attributes"].get("service.name", "")
    if column in ("attributes", "resource_attributes"):
        return {} if exclude_attributes else row[column]
    if column in FIELDS:
        return row[column]
    source, _, key = column.partition(".")
    return row[source].get(key)


def _row_bytes(row: Mapping[str, Any]) -> int:
    """Roughly how much of a page this row is: its text plus a fixed share for the other fields."""
    size = 256 + len(row["body"])
    for name in ("attributes", "resource_attributes"):
        size += sum(len(key) + len(value) for key, value in row[name].items())
    return size


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_TRIGGERS):
        return "'" + text
    return text


class _Sink(abc.ABC):
    """One export file being written; ``finish`` makes it durable and closes it."""

    def __init__(self, file: IO[Any]) -> None:
        self.file = file

    @abc.abstractmethod
    def write(self, cells: list[Any]) -> None:
        """Append one row."""

    def finish(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()


class _CsvSink(_Sink):
    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        super().__init__(open(path, "w", encoding="utf-8", newline=""))  # noqa: SIM115 (closed by finish)
        self._writer = csv.writer(self.file)
        self._writer.writerow(columns)

    def write(self, cells: list[Any]) -> None:
        self._writer.writerow([_csv_text(cell) for cell in cells])


class _JsonLinesSink(_Sink):
    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        super().__init__(open(path, "wb"))  # noqa: SIM115 (closed by finish)
        self._columns = columns

    def write(self, cells: list[Any]) -> None:
        self.file.write(orjson.dumps(dict(zip(self._columns, cells, strict=True))) + b"\n")


RunPage = Callable[[LogsQuery], dict[str, Any]]


def write_export(
    run_page: RunPage,
    query: LogsQuery,
    columns: Sequence[str],
    export_format: str,
    path: Path,
    *,
    max_rows: int = MAX_EXPORTABLE_LOGS,
) -> int:
    """Write up to ``max_rows`` rows of ``query`` to ``path``, page by page; return the row count.

    ``run_page`` is ``LogsQueryRunner.run``. The file appears at ``path`` only when complete: it is written
    beside it and renamed, and removed again if anything fails.
    """
    partial = path.with_name(path.name + ".part")
    # The runner drops attribute maps for excludeAttributes, but service_name is read from them.
    page_query = dataclasses.replace(query, exclude_attributes=False)
    cursor = query.after
    written = 0
    seen_bytes = 0
    page_size = FIRST_PAGE_SIZE
    sink: _Sink = _CsvSink(partial, columns) if export_format == CSV else _JsonLinesSink(partial, columns)
    try:
        while written < max_rows:
            want = min(page_size, max_rows - written)
            page = run_page(dataclasses.replace(page_query, limit=want, after=cursor))
            results = page["results"]
            for row in results:
                sink.write([_cell(row, column, query.exclude_attributes) for column in columns])
                seen_bytes += _row_bytes(row)
            written += len(results)
            page_size = max(1, min(PAGE_SIZE, PAGE_TARGET_BYTES * written // max(seen_bytes, 1)))
            more, next_cursor = page["hasMore"], page["nextCursor"]
            del page, results  # let the page go before the next one is fetched
            if not more or not next_cursor:
                break
            cursor = decode_cursor(next_cursor)
        sink.finish()
        os.replace(partial, path)
    except BaseException:
        sink.file.close()
        partial.unlink(missing_ok=True)
        raise
    return written
