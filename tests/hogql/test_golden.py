"""Golden files for the HogQL compiler: HogQL in, ClickHouse SQL out, compared exactly.

Each ``tests/hogql/fixtures/*.sql`` file holds cases of this shape::

    -- name: a_unique_name
    -- values: {"service": "api"}       optional: the request's values, JSON on one line
    -- filters: {"dateRange": {...}}    optional: the request's filters, JSON on one line
    -- note: free text                  optional, any number
    select message from logs where service_name = {service}
    ;
    SELECT `logs`.body FROM `db`.`logs` AS `logs` WHERE ... SETTINGS ...
    ;

The HogQL may span lines; it ends at a line holding only ``;``. The expected SQL is everything up to the next
line holding only ``;``. Lines outside cases (file comments, blank lines) are ignored. Every case compiles
with ``HogQLRunner`` for team 42 into database ``db``, with default ``HogQLLimits`` and ``NOW``.

Regenerate after an intended compiler change with ``LOGPOND_UPDATE_GOLDEN=1 pytest tests/hogql/test_golden.py``,
then read the diff: every table reference needs ``team_id = 42`` in its WHERE or ON, and SETTINGS needs
``additional_table_filters`` for every table (``test_every_table_reference_is_filtered_by_team`` checks both).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from logpond.hogql.parser import ParserPool
from logpond.hogql.runner import HogQLLimits, HogQLRequest, HogQLRunner
from logpond.store.base import StoreError
from logpond.store.chdb_store import ChDBStore

FIXTURES = Path(__file__).parent / "fixtures"
TEAM_ID = 42
DATABASE = "db"
NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
UPDATE = os.environ.get("LOGPOND_UPDATE_GOLDEN") == "1"

_OPTIONS = ("values", "filters", "note")


@dataclass
class GoldenCase:
    path: Path
    name: str
    header: list[str]  # the ``-- name`` line and the option lines, as written
    hogql: str
    expected: str
    options: dict[str, Any] = field(default_factory=dict)


def _read_until_semicolon(lines: list[str], start: int, path: Path, name: str) -> tuple[str, int]:
    body = []
    for i in range(start, len(lines)):
        if lines[i].strip() == ";":
            return "\n".join(body).strip(), i + 1
        body.append(lines[i])
    raise ValueError(f"{path.name}: case {name!r} is missing a ';' line")


def read_cases(path: Path) -> tuple[list[str], list[GoldenCase]]:
    """The lines before the first case, and the file's cases in order."""
    lines = path.read_text().splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("-- name: ")), len(lines))
    cases: list[GoldenCase] = []
    i = first
    while i < len(lines):
        if not lines[i].startswith("-- name: "):
            if lines[i].strip():
                raise ValueError(f"{path.name}:{i + 1}: text outside a case: {lines[i]!r}")
            i += 1
            continue
        name = lines[i].removeprefix("-- name: ").strip()
        header = [lines[i]]
        options: dict[str, Any] = {}
        i += 1
        while i < len(lines) and lines[i].startswith("-- "):
            key, _, value = lines[i][3:].partition(": ")
            if key not in _OPTIONS:
                raise ValueError(f"{path.name}:{i + 1}: unknown option {key!r}")
            if key != "note":
                options[key] = json.loads(value)
            header.append(lines[i])
            i += 1
        hogql, i = _read_until_semicolon(lines, i, path, name)
        expected, i = _read_until_semicolon(lines, i, path, name)
        cases.append(GoldenCase(path, name, header, hogql, expected, options))
    return lines[:first], cases


def write_cases(path: Path, preamble: list[str], cases: list[GoldenCase]) -> None:
    out = [*preamble]
    for case in cases:
        out.extend([*case.header, case.hogql, ";", case.expected, ";", ""])
    path.write_text("\n".join(out).rstrip("\n") + "\n")


PARSER = ParserPool(processes=0)


def compile_case(case: GoldenCase, database: str = DATABASE) -> str:
    runner = HogQLRunner(PARSER, database)
    request = HogQLRequest(
        query=case.hogql, values=case.options.get("values") or {}, filters=case.options.get("filters")
    )
    return runner.compile(TEAM_ID, request, HogQLLimits(), now=NOW).sql


def _all_cases() -> list[GoldenCase]:
    cases: list[GoldenCase] = []
    for path in sorted(FIXTURES.glob("*.sql")):
        _, found = read_cases(path)
        cases.extend(found)
    return cases


CASES = _all_cases()


@pytest.fixture(scope="module", autouse=True)
def regenerate() -> None:
    """With LOGPOND_UPDATE_GOLDEN=1, rewrite every fixture file's expected SQL from the compiler first."""
    if not UPDATE:
        return
    for path in sorted(FIXTURES.glob("*.sql")):
        preamble, cases = read_cases(path)
        for case in cases:
            case.expected = compile_case(case)
        write_cases(path, preamble, cases)
    fresh = {(c.path, c.name): c.expected for c in _all_cases()}
    for case in CASES:
        case.expected = fresh[(case.path, case.name)]


def test_case_names_are_unique() -> None:
    """Every golden case has its own name, so a failure points at one case."""
    names = [f"{c.path.stem}::{c.name}" for c in CASES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.path.stem}::{c.name}")
def test_compiles_to_expected_sql(case: GoldenCase) -> None:
    """The HogQL compiles to exactly the frozen ClickHouse SQL."""
    assert compile_case(case) == case.expected


_TABLE_REFERENCE = re.compile(r"`db`\.`(\w+)` AS `(\w+)`")
_ANY_TEAM = re.compile(r"team_id = (\d+)")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.path.stem}::{c.name}")
def test_every_table_reference_is_filtered_by_team(case: GoldenCase) -> None:
    """Each table reference in the frozen SQL has its alias's team condition and an additional_table_filters entry."""
    query, _, settings = case.expected.rpartition(" SETTINGS ")
    references = _TABLE_REFERENCE.findall(query)
    for table, alias in references:
        assert f"(`{alias}`.team_id = {TEAM_ID})" in query, (table, alias)
        assert f"'{DATABASE}.{table}': 'team_id = {TEAM_ID}'" in settings, table
    assert {int(team) for team in _ANY_TEAM.findall(case.expected)} <= {TEAM_ID}
    if not references:
        assert "additional_table_filters" not in settings
    assert "readonly = 2" in settings


def test_golden_sql_runs_on_chdb(store: ChDBStore) -> None:
    """Every golden case, compiled for a real database, is SQL that chDB runs."""
    failures = {}
    for case in CASES:
        try:
            store.execute(compile_case(case, database=store.database))
        except StoreError as exc:
            failures[f"{case.path.stem}::{case.name}"] = str(exc)[:300]
    assert failures == {}
