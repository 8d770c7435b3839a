"""HogQL over HTTP against a real ``logpond serve``: logs shipped by the OpenTelemetry SDK, queried with httpx.

One server serves the whole module (the tests only read what the first one sends, and add nothing the
others count). The server parses HogQL in its worker process with the default two-second timeout, so a
pathological query costs that worker, not the server.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e._server import Credentials, ServerProcess, api_client, module_server
from tests.e2e.test_otel_sdk import otel_logging

# what the SDK sends: (level method, message, count)
SENT = [
    ("info", "user %d signed in", 6),
    ("warning", "disk %d almost full", 3),
    ("error", "payment failed for order %d", 2),
]
TOTAL = sum(n for _, _, n in SENT)


# f(f(f(...1...))) twelve deep: parsed (in well under a second by a fresh parser), then refused: f is unknown
NESTED_CALLS = "select " + "f(" * 12 + "1" + ")" * 12 + " from logs"
# four hundred nested NOTs: no brackets for the depth guard to count, and the grammar backtracks for minutes
NESTED_NOTS = "select " + "not " * 400 + "1 from logs"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with module_server(tmp_path_factory.mktemp("query_e2e")) as process:
        yield process


@pytest.fixture(autouse=True)
def _show_server_log(request: pytest.FixtureRequest, server: ServerProcess) -> None:
    request.node._logpond_servers = [server]  # the e2e conftest attaches its log tail to failures


@pytest.fixture(scope="module")
def credentials(server: ServerProcess) -> Credentials:
    return server.credentials()


@pytest.fixture(scope="module")
def http(server: ServerProcess, credentials: Credentials) -> Iterator[httpx.Client]:
    with api_client(server, credentials) as client:
        yield client


@pytest.fixture(scope="module")
def shipped(server: ServerProcess, credentials: Credentials, http: httpx.Client) -> None:
    """The SENT logs, exported by the SDK and visible to HogQL."""
    with otel_logging(server, credentials.token) as pipeline:
        for method, message, count in SENT:
            for i in range(count):
                getattr(pipeline.logger, method)(message, i, extra={"seq": i})
        assert pipeline.provider.force_flush(timeout_millis=10_000)
    deadline = time.monotonic() + 10
    while (seen := hogql(http, credentials, "SELECT count() FROM logs")["results"]) != [[TOTAL]]:
        assert time.monotonic() < deadline, f"{seen} of {TOTAL} logs arrived within 10 s"
        time.sleep(0.1)


def post_hogql(http: httpx.Client, credentials: Credentials, text: str, **query: Any) -> httpx.Response:
    body = {"query": {"kind": "HogQLQuery", "query": text, **query}}
    return http.post(f"/api/projects/{credentials.project_id}/query", json=body)


def assert_error(response: httpx.Response, code: str, detail: str | None = None) -> str:
    """The response is a 400 validation_error with this code (and detail); returns the detail."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["type"], body["code"], body["attr"]) == ("validation_error", code, None), body
    if detail is not None:
        assert body["detail"] == detail
    return str(body["detail"])


def hogql(http: httpx.Client, credentials: Credentials, text: str, **query: Any) -> dict[str, Any]:
    response = post_hogql(http, credentials, text, **query)
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


@pytest.mark.usefixtures("shipped")
def test_group_by_level(http: httpx.Client, credentials: Credentials) -> None:
    """Counting the SDK's logs by level gives one row per level the stdlib logger used."""
    doc = hogql(http, credentials, "SELECT level, count() AS n FROM logs GROUP BY level ORDER BY level")
    assert doc["results"] == [["error", 2], ["info", 6], ["warn", 3]]
    assert doc["columns"] == ["level", "n"] and doc["types"][1] == ["n", "UInt64"]


@pytest.mark.usefixtures("shipped")
def test_message_like_and_attributes(http: httpx.Client, credentials: Credentials) -> None:
    """A LIKE on message finds the formatted messages; the SDK's resource and extra attributes are readable."""
    doc = hogql(
        http,
        credentials,
        "SELECT message, attributes['seq'], resource_attributes['service.name'] FROM logs "
        "WHERE message LIKE {pattern} ORDER BY message",
        values={"pattern": "payment failed%"},
    )
    assert doc["results"] == [
        ["payment failed for order 0", "0", "checkout"],
        ["payment failed for order 1", "1", "checkout"],
    ]


@pytest.mark.usefixtures("shipped")
def test_nested_query_fails_fast_while_other_queries_answer(
    http: httpx.Client, credentials: Credentials, server: ServerProcess
) -> None:
    """A query the grammar would take minutes on is 400 within ~3 s, and the server keeps answering meanwhile."""
    cached = "SELECT count() FROM logs WHERE level = 'warn'"
    assert hogql(http, credentials, cached)["results"] == [[3]]  # parsed before: cached from now on
    started = time.monotonic()
    calls = post_hogql(http, credentials, NESTED_CALLS)
    assert time.monotonic() - started < 6
    assert_error(calls, "hogql_query_error", "Unsupported function: f")
    outcome: dict[str, Any] = {}

    def send_nested() -> None:
        started = time.monotonic()
        outcome["response"] = post_hogql(http, credentials, NESTED_NOTS)
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=send_nested)
    thread.start()
    time.sleep(0.3)  # the parser worker is busy with NESTED_NOTS now
    started = time.monotonic()
    assert http.get("/_health").status_code == 200
    assert hogql(http, credentials, cached)["results"] == [[3]]
    assert time.monotonic() - started < 2.0, "the server stalled while the nested query was parsed"
    # a query the parser has not seen waits for a worker, but answers
    assert hogql(http, credentials, "SELECT count() FROM logs WHERE level = 'error'")["results"] == [[2]]
    thread.join(30)
    response = outcome["response"]
    assert "to parse" in assert_error(response, "hogql_syntax_error")
    assert outcome["seconds"] < 6, outcome["seconds"]  # the 2 s parse timeout, with room for a loaded machine
    # the pool has a fresh worker afterwards
    assert hogql(http, credentials, "SELECT count() FROM logs WHERE level = 'info'")["results"] == [[6]]


def test_real_posthog_sdk_imports_after_hogql_was_used(http: httpx.Client, credentials: Credentials) -> None:
    """After HogQL was parsed in this process, ``import posthog`` is the real SDK, not the parser's stand-in."""
    from logpond.hogql.parser import ParserPool

    assert hogql(http, credentials, "SELECT 1")["results"] == [[1]]
    ParserPool(processes=0).parse_select("SELECT level FROM logs")  # hogql_parser imported here, in-process
    import posthog

    assert Path(posthog.__file__).parent.parent.name == "site-packages"
    assert callable(posthog.Posthog) and callable(posthog.capture)
    assert "posthog.hogql" not in sys.modules
    seen: list[dict[str, Any]] = []  # before_send sees each event; returning None drops it (nothing is sent)
    client = posthog.Posthog("phc_test", host="http://127.0.0.1:9", sync_mode=True, before_send=seen.append)
    client.capture("queried logs", distinct_id="e2e", properties={"rows": 1})
    client.shutdown()
    assert [(e["event"], e["distinct_id"], e["properties"]["rows"]) for e in seen] == [("queried logs", "e2e", 1)]
    # and in a fresh interpreter, whichever of the two is imported first
    for script in (
        "from logpond.hogql.parser import ParserPool; ParserPool(processes=0).parse_select('select 1');"
        "import posthog; assert posthog.Posthog and posthog.capture",
        "import posthog; from logpond.hogql.parser import ParserPool;"
        "ParserPool(processes=0).parse_select('select 1'); import posthog.client; assert posthog.Posthog",
    ):
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
