"""Query benchmark: the Logs API and HogQL over 10 million demo logs spread over 24 hours.

Logs API: searches, counts, the explorer's aggregates (sparkline, count-ranges, services, attribute keys
and values, facets, group-by), patterns over the last hour and the first page of a 30-day search.

HogQL: (a) parse + compile alone, for a repeated query (the runner's cache) and for a new query each time
(parsed in-process and in a one-worker parser pool, as the server does); (b) five query shapes end to end
through ``POST /api/projects/1/query/`` with a personal API key; (c) the same printed ClickHouse SQL run
directly on chDB (``store.execute``), with the server stopped, to show what the API adds.

    .venv/bin/python -m bench.query                  # 10,000,000 logs (generated once into .bench/query-data)
    .venv/bin/python -m bench.query --only hogql     # the HogQL part only (also: --only logs, --only alerts)
    .venv/bin/python -m bench.query --logs 1000000 --runs 10

The data is written straight into the store by ``logpond demo`` (once; later runs reuse it), then a real
``logpond serve`` answers the queries over HTTP. Each query runs ``--runs`` times after one warm-up; the
script prints p50 and p95 per query. The data ends when it was generated, so the HogQL queries name their
time ranges from that moment (``bench-query.json``) rather than from ``now()``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench._server import LOGPOND, Server, cli_json


def ensure_data(data_dir: Path, logs: int) -> dt.datetime:
    marker = data_dir / "bench-query.json"
    if marker.exists():
        doc = json.loads(marker.read_text())
        if doc["logs"] == logs:
            return dt.datetime.fromisoformat(doc["end"])
    if data_dir.exists():
        subprocess.run(["rm", "-rf", str(data_dir)], check=True)
    data_dir.mkdir(parents=True)
    end = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    subprocess.run([*LOGPOND, "demo", "--logs", str(logs), "--days", "1", "--data-dir", str(data_dir)], check=True)
    print(f"generated {logs:,} demo logs in {time.perf_counter() - t0:.0f} s")
    marker.write_text(json.dumps({"logs": logs, "end": end.isoformat()}))
    return end


def _rows(doc: Any) -> int:
    """How many items a response holds, whatever its shape."""
    if isinstance(doc, list):
        return len(doc)
    for key in ("results", "ranges", "services", "groups", "patterns"):
        if key in doc:
            return len(doc[key])
    return int(doc["count"])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def logs_api(args: argparse.Namespace, end: dt.datetime) -> None:
    date_range = {
        "date_from": (end - dt.timedelta(hours=24, minutes=5)).isoformat(),
        "date_to": (end + dt.timedelta(minutes=5)).isoformat(),
    }
    last_hour = {
        "date_from": (end - dt.timedelta(hours=1)).isoformat(),
        "date_to": end.isoformat(),
    }
    thirty_days = {"date_from": (end - dt.timedelta(days=30)).isoformat(), "date_to": end.isoformat()}
    queries: list[tuple[str, str, dict[str, Any]]] = [
        (
            "newest page, one service (100 rows)",
            "query",
            {"dateRange": date_range, "serviceNames": ["checkout"], "limit": 100},
        ),
        ("newest page, all services (100 rows)", "query", {"dateRange": date_range, "limit": 100}),
        (
            "searchTerm 'timeout' over 24 h (100 rows)",
            "query",
            {"dateRange": date_range, "searchTerm": "timeout", "limit": 100},
        ),
        (
            "attribute filter http.status_code=503 (100 rows)",
            "query",
            {
                "dateRange": date_range,
                "limit": 100,
                "filterGroup": [
                    {"key": "http.status_code", "value": "503", "operator": "exact", "type": "log_attribute"}
                ],
            },
        ),
        (
            "errors of one service (100 rows)",
            "query",
            {"dateRange": date_range, "severityLevels": ["error"], "serviceNames": ["payments"], "limit": 100},
        ),
        ("count, 24 h", "count", {"dateRange": date_range}),
        (
            "count, errors with search, 24 h",
            "count",
            {"dateRange": date_range, "severityLevels": ["error", "fatal"], "searchTerm": "timeout"},
        ),
        ("sparkline by severity, 24 h", "sparkline", {"dateRange": date_range}),
        (
            "sparkline by service, ranked by bytes, 24 h",
            "sparkline",
            {"dateRange": date_range, "sparklineBreakdownBy": "service", "sparklineRankBy": "bytes"},
        ),
        ("count-ranges, 24 h", "count-ranges", {"dateRange": date_range}),
        ("services, 24 h", "services", {"dateRange": date_range}),
        ("facet values: service_name, 24 h", "facet_values", {"dateRange": date_range, "facetField": "service_name"}),
        ("group-by http.route, 1 h", "group-by", {"dateRange": last_hour, "groupBy": "http.route"}),
        ("attributes (log keys), 1 h", "GET attributes", {"dateRange": json.dumps(last_hour)}),
        ("attributes (log keys), 24 h", "GET attributes", {"dateRange": json.dumps(date_range)}),
        (
            "values of request.id (high cardinality), 1 h",
            "GET values",
            {"key": "request.id", "dateRange": json.dumps(last_hour)},
        ),
        ("values of http.route, 24 h", "GET values", {"key": "http.route", "dateRange": json.dumps(date_range)}),
        ("patterns, 1 h", "patterns", {"dateRange": last_hour}),
        (
            "first page of a 30-day searchTerm query (100 rows)",
            "query",
            {"dateRange": thirty_days, "searchTerm": "timeout", "limit": 100},
        ),
        (
            "first page of a 30-day searchTerm query (1000 rows)",
            "query",
            {"dateRange": thirty_days, "searchTerm": "timeout"},
        ),
    ]

    server = Server(args.data_dir)
    server.start()
    try:
        key = cli_json(args.data_dir, "keys", "create", "--scopes", "logs:read")["key"]  # type: ignore[index]
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
            total = client.post("/api/projects/1/logs/count/", json={"query": {"dateRange": date_range}}).json()[
                "count"
            ]
            print(f"{total:,} logs in range; {args.runs} runs per query after a warm-up\n")
            print(f"{'query':<52} {'p50 ms':>8} {'p95 ms':>8} {'rows':>7}")
            for name, endpoint, query in queries:
                timings = []
                rows = 0
                for i in range(args.runs + 1):
                    t0 = time.perf_counter()
                    if endpoint.startswith("GET "):
                        response = client.get(f"/api/projects/1/logs/{endpoint[4:]}/", params=query)
                    else:
                        response = client.post(f"/api/projects/1/logs/{endpoint}/", json={"query": query})
                    elapsed = time.perf_counter() - t0
                    response.raise_for_status()
                    rows = _rows(response.json())
                    if i:
                        timings.append(elapsed * 1000)
                print(f"{name:<52} {statistics.median(timings):>8.1f} {percentile(timings, 0.95):>8.1f} {rows:>7}")
    finally:
        server.stop()


def alerts_simulate(args: argparse.Namespace) -> None:
    """``logs/alerts/simulate/`` over the last 7 days (2,016 checks), for rules the rollup answers and one
    whose attribute filter reads the logs."""
    rules: list[tuple[str, dict[str, Any]]] = [
        ("errors of one service", {"severityLevels": ["error"], "serviceNames": ["checkout"]}),
        ("all errors, 3 of 5 windows, 30-minute cooldown", {"severityLevels": ["error"]}),
        (
            "attribute filter http.status_code=503 (reads logs)",
            {
                "filterGroup": [
                    {"key": "http.status_code", "value": "503", "operator": "exact", "type": "log_attribute"}
                ]
            },
        ),
    ]
    server = Server(args.data_dir)
    server.start()
    try:
        key = cli_json(args.data_dir, "keys", "create", "--scopes", "logs:read")["key"]  # type: ignore[index]
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
            print(f"\n{'alert simulate, 7 days':<52} {'p50 ms':>8} {'p95 ms':>8} {'fires':>7}")
            for name, filters in rules:
                body: dict[str, Any] = {"filters": filters, "threshold_count": 500, "date_from": "-7d"}
                if "3 of 5" in name:
                    body |= {"evaluation_periods": 5, "datapoints_to_alarm": 3, "cooldown_minutes": 30}
                timings = []
                fires = 0
                for i in range(args.runs + 1):
                    t0 = time.perf_counter()
                    response = client.post("/api/projects/1/logs/alerts/simulate/", json=body)
                    elapsed = time.perf_counter() - t0
                    response.raise_for_status()
                    fires = response.json()["fire_count"]
                    if i:
                        timings.append(elapsed * 1000)
                print(f"{name:<52} {statistics.median(timings):>8.1f} {percentile(timings, 0.95):>8.1f} {fires:>7}")
    finally:
        server.stop()


# --- HogQL ---------------------------------------------------------------------------------------------


def _literal(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("'%Y-%m-%d %H:%M:%S'")


def hogql_queries(end: dt.datetime) -> list[tuple[str, str]]:
    """The five shapes, their time ranges ending at ``end`` (a different ``end`` makes every text new)."""
    last = _literal(end)
    hour = _literal(end - dt.timedelta(hours=1))
    six_hours = _literal(end - dt.timedelta(hours=6))
    day = _literal(end - dt.timedelta(hours=24, minutes=5))
    return [
        (
            "recent logs, last hour (100 rows)",
            f"SELECT timestamp, level, message FROM logs WHERE timestamp > toDateTime({last}) - INTERVAL 1 HOUR "
            "ORDER BY timestamp DESC LIMIT 100",
        ),
        (
            "level + service + attribute filter, 24 h (100 rows)",
            "SELECT timestamp, service_name, message FROM logs WHERE level = 'error' AND service_name = 'payments' "
            f"AND attributes['http.status_code'] = '503' AND timestamp >= {day} ORDER BY timestamp DESC LIMIT 100",
        ),
        (
            "message LIKE '%timeout%', 6 h (100 rows)",
            f"SELECT timestamp, service_name, message FROM logs WHERE message LIKE '%timeout%' AND timestamp >= "
            f"{six_hours} AND timestamp < {last} ORDER BY timestamp DESC LIMIT 100",
        ),
        (
            "hourly count/countIf/uniq/quantile, 6 h",
            "SELECT toStartOfHour(timestamp) AS hour, count() AS n, countIf(level = 'error') AS errors, "
            "uniq(service_name) AS services, quantile(0.95)(toFloatOrNull(attributes['duration_ms'])) AS p95_ms "
            f"FROM logs WHERE timestamp >= {six_hours} AND timestamp < {last} GROUP BY hour ORDER BY hour",
        ),
        (
            "CTE joined back to logs: error rate by service, 1 h",
            "WITH error_counts AS (SELECT service_name, count() AS n FROM logs WHERE level = 'error' AND timestamp >= "
            f"{hour} GROUP BY service_name) SELECT l.service_name AS service, count() AS total, any(e.n) AS errors, "
            "round(any(e.n) / count(), 4) AS error_rate FROM logs AS l JOIN error_counts AS e ON l.service_name = "
            f"e.service_name WHERE l.timestamp >= {hour} GROUP BY service ORDER BY error_rate DESC",
        ),
    ]


def _p50_p95(values: list[float]) -> str:
    return f"{statistics.median(values):>8.2f} {percentile(values, 0.95):>8.2f}"


def hogql_compile(end: dt.datetime, runs: int) -> None:
    """(a) parse + compile + print, without executing: cache hit, and a new text parsed in-process or in a worker."""
    from logpond.hogql.parser import ParserPool
    from logpond.hogql.runner import HogQLLimits, HogQLRequest, HogQLRunner

    limits = HogQLLimits(max_execution_time=10.0, allow_offset=False)  # a personal API key's
    in_process = HogQLRunner(ParserPool(processes=0), "logpond")
    pool = ParserPool(processes=1)
    pool.warm_up()
    in_worker = HogQLRunner(pool, "logpond")
    now = dt.datetime.now(dt.UTC)

    def compile_ms(runner: HogQLRunner, text: str) -> tuple[float, float]:
        """(wall ms of compile(), ms of it spent in the parser; 0 on a cache hit)."""
        started = time.perf_counter()
        compiled = runner.compile(1, HogQLRequest(query=text), limits, now=now)
        wall = (time.perf_counter() - started) * 1000
        return wall, sum(t["t"] for t in compiled.timings if t["k"] == "./parse_select") * 1000

    def new_text(shape: int, seconds: int) -> str:
        # its time range moves by a second, so the text is new to both caches (runner's and parser's)
        return hogql_queries(end + dt.timedelta(seconds=seconds))[shape][1]

    try:
        for i in range(3):  # import the parser, fill the function tables, start the worker
            for _, text in hogql_queries(end - dt.timedelta(days=1, seconds=i)):
                compile_ms(in_process, text)
                compile_ms(in_worker, text)
        print(f"HogQL parse + compile + print, without executing; {runs} runs each (ms)\n")
        columns = f"{'repeated (cached)':>17} {'new, in-process':>17} {'of which parse':>14} {'new, 1 worker':>17}"
        print(f"{'query':<52} {columns}")
        print(f"{'':<52} {'p50':>8} {'p95':>8} {'p50':>8} {'p95':>8} {'p50':>14} {'p50':>8} {'p95':>8}")
        for shape, (name, text) in enumerate(hogql_queries(end)):
            compile_ms(in_process, text)  # the first time compiles; the runs below hit the cache
            repeated = [compile_ms(in_process, text)[0] for _ in range(runs)]
            new_in_process = [compile_ms(in_process, new_text(shape, i + 1)) for i in range(runs)]
            new_in_worker = [compile_ms(in_worker, new_text(shape, -i - 1))[0] for i in range(runs)]
            print(
                f"{name:<52} {_p50_p95(repeated)} {_p50_p95([w for w, _ in new_in_process])} "
                f"{statistics.median(p for _, p in new_in_process):>14.2f} {_p50_p95(new_in_worker)}"
            )
        print()
    finally:
        pool.close()


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)  # ms, as the client sees it
    execute: list[float] = field(default_factory=list)  # ms, the server's ./clickhouse_execute timing
    rows: int = 0


def hogql_http(url: str, key: str, end: dt.datetime, runs: int, into: dict[str, Samples]) -> None:
    """(b) each shape through ``/query/`` with a personal API key, ``runs`` times after a warm-up."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
        for name, text in hogql_queries(end):
            samples = into.setdefault(name, Samples())
            for i in range(runs + 1):
                t0 = time.perf_counter()
                response = client.post("/api/projects/1/query/", json={"query": {"kind": "HogQLQuery", "query": text}})
                elapsed = time.perf_counter() - t0
                if response.status_code != 200:
                    raise SystemExit(f"{name}: HTTP {response.status_code} {response.text}")
                doc = response.json()
                samples.rows = len(doc["results"])
                if i:
                    samples.wall.append(elapsed * 1000)
                    samples.execute.append(
                        next(t["t"] for t in doc["timings"] if t["k"] == "./clickhouse_execute") * 1000
                    )


def hogql_direct(data_dir: Path, end: dt.datetime, runs: int) -> dict[str, Any]:
    """(c) the SQL the runner prints for project 1 (with a personal key's limits, as over HTTP), run on chDB.

    Runs in its own process (``--direct``): chDB keeps the data dir locked for the life of the process that
    opened it, and the server must start again for the next round.
    """
    from logpond.app import build_services
    from logpond.config import Settings
    from logpond.hogql.runner import HogQLRequest

    services = build_services(Settings(data_dir=data_dir, hogql_parse_processes=0))
    runner = services.hogql_runner
    assert runner is not None
    limits = services.hogql_limits(personal_key=True)
    found: dict[str, Any] = {}
    for name, text in hogql_queries(end):
        sql = runner.compile(1, HogQLRequest(query=text), limits, now=services.clock()).sql
        wall: list[float] = []
        rows = 0
        for i in range(runs + 1):
            t0 = time.perf_counter()
            rows = len(services.store.execute(sql).rows)
            if i:
                wall.append((time.perf_counter() - t0) * 1000)
        found[name] = {"wall": wall, "rows": rows}
    return found


def hogql_end_to_end(data_dir: Path, end: dt.datetime, runs: int, rounds: int) -> None:
    """(b) and (c) in alternating rounds, so that load from elsewhere on the machine falls on both alike."""
    key = cli_json(data_dir, "keys", "create", "--scopes", "query:read", "--label", "bench")["key"]  # type: ignore[index]
    per_round = max(1, -(-runs // rounds))
    http: dict[str, Samples] = {}
    direct: dict[str, Samples] = {}
    for _ in range(rounds):
        server = Server(data_dir)
        server.start()
        try:
            hogql_http(server.url, key, end, per_round, http)
        finally:
            server.stop()
        command = [
            sys.executable,
            "-m",
            "bench.query",
            "--direct",
            "--runs",
            str(per_round),
            "--data-dir",
            str(data_dir),
        ]
        out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
        for name, doc in json.loads(out.splitlines()[-1]).items():
            samples = direct.setdefault(name, Samples())
            samples.wall.extend(doc["wall"])
            samples.rows = doc["rows"]

    total = rounds * per_round
    # exec: the server's own ./clickhouse_execute timing of each request (the same store.execute work as the
    # chDB column, in the server's process); API: the rest of that request (HTTP, auth, compile cache,
    # queueing, formatting, JSON both ways). "ratio" divides medians taken in two processes minutes apart;
    # "paired" divides each request's wall time by its own exec time, which this machine's noise cannot skew.
    print("HogQL end to end (POST /api/projects/1/query/, personal API key) vs the same SQL on chDB directly;")
    print(f"{rounds} rounds of {per_round} runs after a warm-up, {total} runs per figure (ms)\n")
    header = (
        f"{'HTTP p50':>8} {'p95':>8} {'exec p50':>8} {'API p50':>7} {'chDB p50':>8} {'p95':>8} "
        f"{'ratio':>6} {'paired':>6} {'rows':>5}"
    )
    print(f"{'query':<52} {header}")
    for name, samples in http.items():
        baseline = direct[name]
        pairs = list(zip(samples.wall, samples.execute, strict=True))
        ratio = statistics.median(samples.wall) / statistics.median(baseline.wall)
        paired = statistics.median(w / e for w, e in pairs)
        note = "" if samples.rows == baseline.rows else f"  (chDB: {baseline.rows} rows)"
        print(
            f"{name:<52} {_p50_p95(samples.wall)} {statistics.median(samples.execute):>8.1f} "
            f"{statistics.median(w - e for w, e in pairs):>7.1f} {_p50_p95(baseline.wall)} "
            f"{ratio:>5.2f}x {paired:>5.2f}x {samples.rows:>5}{note}"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logs", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--compile-runs", type=int, default=200, help="runs per HogQL compile figure")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of HTTP and direct chDB runs (HogQL)")
    parser.add_argument(
        "--only", choices=("logs", "hogql", "alerts"), help="run only the Logs API, the HogQL or the alerts part"
    )
    parser.add_argument("--data-dir", type=Path, default=Path(".bench/query-data"))
    parser.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)  # one round of (c), as JSON
    args = parser.parse_args()

    end = ensure_data(args.data_dir, args.logs)
    if args.direct:
        print(json.dumps(hogql_direct(args.data_dir, end, args.runs)))
        return
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)\n")
    if args.only in (None, "logs"):
        logs_api(args, end)
    if args.only in (None, "alerts"):
        alerts_simulate(args)
    if args.only in (None, "hogql"):
        hogql_compile(end, args.compile_runs)
        hogql_end_to_end(args.data_dir, end, args.runs, args.rounds)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
