"""The HogQL parser adapter: no trace in sys.modules, errors with positions, bounded input and parse time."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
import time

import pytest

from logpond.hogql.errors import HogQLSyntaxError
from logpond.hogql.parser import MAX_BRACKET_DEPTH, MAX_QUERY_CHARS, ParserPool, check_shape, import_hogql_parser

POSTHOG_MODULES = ("posthog", "posthog.hogql", "posthog.hogql.errors")

# a chain of prefix NOTs has no brackets, so check_shape lets it through, and the parser's time grows
# steeply with its length: 60 take 3 s, 200 more than 30 s, 400 far more than any timeout here
PATHOLOGICAL = "select " + "not " * 400 + "1"

# the real SDK, used for real: a client whose before_send hook sees the captured event
_USE_SDK = """
    seen = []
    client = posthog.Posthog("phc_test", host="http://127.0.0.1:9", sync_mode=True, before_send=seen.append)
    client.capture("signed up", distinct_id="d1", properties={"plan": "free"})
    client.shutdown()
    assert [(e["event"], e["distinct_id"], e["properties"]["plan"]) for e in seen] == [("signed up", "d1", "free")]
    assert posthog.VERSION == "7.91.1" and posthog.__file__.endswith("posthog/__init__.py")
    assert not hasattr(posthog, "hogql")
"""


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=False
    )


def test_import_leaves_sys_modules_unchanged() -> None:
    """import_hogql_parser() adds, removes and replaces none of posthog's module names in this process."""
    missing = object()
    before = {name: sys.modules.get(name, missing) for name in POSTHOG_MODULES}
    import_hogql_parser()
    assert {name: sys.modules.get(name, missing) for name in POSTHOG_MODULES} == before


def test_sdk_imports_after_the_parser_in_a_clean_process() -> None:
    """In a fresh process, the parser loads without leaving posthog modules behind, then the real SDK works."""
    code = (
        """
    import sys
    from logpond.hogql.parser import ParserPool, import_hogql_parser
    import_hogql_parser()
    assert [m for m in sys.modules if m == "posthog" or m.startswith("posthog.")] == []
    assert ParserPool(processes=0).parse_select("select 1")["node"] == "SelectQuery"
    import posthog
    """
        + _USE_SDK
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr


def test_sdk_imported_before_the_parser_keeps_working() -> None:
    """In a fresh process with the SDK already imported, the parser loads and the SDK module stays the same."""
    code = (
        """
    import sys
    import posthog
    from logpond.hogql.parser import ParserPool, import_hogql_parser
    import_hogql_parser()
    assert sys.modules["posthog"] is posthog
    assert "posthog.hogql" not in sys.modules and "posthog.hogql.errors" not in sys.modules
    assert ParserPool(processes=0).parse_select("select 1")["node"] == "SelectQuery"
    """
        + _USE_SDK
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("select message\nfrom logs\nwhere level = = 'error'", 3, 15),
        ("select message\nfrom logs where", 2, 16),
        ("selec 1", 1, 1),
    ],
)
def test_syntax_error_has_line_and_column(text: str, line: int, column: int) -> None:
    """A syntax error is a HogQLSyntaxError whose detail says the line and column."""
    with pytest.raises(HogQLSyntaxError) as raised:
        ParserPool(processes=0).parse_select(text)
    assert (raised.value.line, raised.value.column) == (line, column)
    assert raised.value.detail.endswith(f"(line {line}, column {column})")


def test_check_shape_rejects_long_text() -> None:
    """Text over 64 KiB is refused before parsing; text of exactly 64 KiB is not."""
    assert MAX_QUERY_CHARS == 64 * 1024
    check_shape("select 1 " + " " * (MAX_QUERY_CHARS - 9))
    too_long = "select 1 " + " " * (MAX_QUERY_CHARS - 8)
    with pytest.raises(HogQLSyntaxError, match="65537 characters long"):
        check_shape(too_long)
    with pytest.raises(HogQLSyntaxError, match="limit is 65536"):
        ParserPool(processes=0).parse_select(too_long)


def test_check_shape_rejects_deep_brackets() -> None:
    """Brackets nested deeper than 32 are refused at the first bracket too many, with its position."""
    assert MAX_BRACKET_DEPTH == 32
    check_shape("select " + "(" * 32 + "1" + ")" * 32)
    check_shape("select " + "[(" * 16 + "1" + ")]" * 16)
    with pytest.raises(HogQLSyntaxError, match="nested more than 32 deep") as raised:
        check_shape("select " + "(" * 49 + "1" + ")" * 49)
    assert (raised.value.line, raised.value.column) == (1, 8 + 32)
    with pytest.raises(HogQLSyntaxError, match="nested more than 32 deep"):
        check_shape("select " + "{[(" * 17)


def test_check_shape_ignores_brackets_in_strings() -> None:
    """Brackets inside quotes and backquotes, escaped quotes included, do not count as nesting."""
    check_shape("select '" + "(" * 100 + "', `" + "[" * 100 + '`, "' + "{" * 100 + '"')
    check_shape("select 'it\\'s " + "(" * 100 + "'")


def _parser_workers() -> set[int]:
    return {p.pid for p in multiprocessing.active_children() if p.name == "logpond-hogql-parser"}


def test_pool_kills_a_pathological_parse_and_recovers() -> None:
    """A parse over the timeout is killed about when the timeout ends; the pool then parses normally again."""
    before = _parser_workers()
    pool = ParserPool(processes=1, timeout=1.0)
    try:
        pool.warm_up()
        (worker,) = _parser_workers() - before
        started = time.monotonic()
        with pytest.raises(HogQLSyntaxError, match="longer than 1 s to parse"):
            pool.parse_select(PATHOLOGICAL)
        elapsed = time.monotonic() - started
        assert 1.0 <= elapsed < 5.0
        assert worker not in _parser_workers()
        assert pool.parse_select("select count() from logs where not not 1")["node"] == "SelectQuery"
        with pytest.raises(HogQLSyntaxError) as raised:
            pool.parse_select("select\n1 +")
        assert raised.value.line == 2
    finally:
        pool.close()
    assert _parser_workers() <= before
