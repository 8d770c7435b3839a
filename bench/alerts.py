"""Alert scheduler benchmark: one tick of 1,000 enabled alerts over a 10-million-log project.

    .venv/bin/python -m bench.alerts                  # 1,000 alerts, the 10,000,000 logs of bench.query
    .venv/bin/python -m bench.alerts --alerts 200 --ticks 3
    .venv/bin/python -m bench.alerts --attribute-share 1     # every alert reads the logs (the worst case)

The logs are ``bench.query``'s (``logpond demo``, 24 hours, generated once into ``.bench/query-data``).
The scheduler runs in this process on that store, with its own throwaway metadata database, and a clock
set to the moment the data ends, so the alerts' windows hold the busiest part of the data. Alerts are a
mix like a real project's: 70% count a service and/or severity (answered from the ``log_counts`` rollup
once they run on the 5-minute grid), 30% filter on a log attribute (read from the logs); every alert has a
webhook destination on a local receiver, so firing costs real deliveries.

Printed per tick: wall time, alerts checked, store queries, metadata statements, notifications. The first
tick checks every alert for the first time (windows end at the current minute); the following ticks run
on the 5-minute grid, as the scheduler does from then on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.query import ensure_data
from logpond.alerts.destinations import KINDS, parse_destination
from logpond.alerts.rules import parse_alert, plan_create
from logpond.alerts.scheduler import AlertScheduler, delivery_settings
from logpond.app import build_services
from logpond.config import Settings
from logpond.demo import SERVICE_NAMES
from logpond.meta import MetaDB

SEVERITIES = ("warn", "error", "fatal")
STATUS_CODES = ("500", "502", "503", "404", "429")
WINDOWS = (5, 10, 15, 30, 60)


class _Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


class _Sink(BaseHTTPRequestHandler):
    received = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("content-length") or 0))
        type(self).received += 1
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


def alert_bodies(count: int, attribute_share: float, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    bodies = []
    for i in range(count):
        filters: dict[str, Any]
        if i % 100 >= round(attribute_share * 100):
            filters = {}
            if rng.random() < 0.8:
                filters["serviceNames"] = rng.sample(SERVICE_NAMES, rng.choice((1, 1, 2)))
            if rng.random() < 0.7 or not filters:
                filters["severityLevels"] = rng.sample(SEVERITIES, rng.choice((1, 2)))
        else:
            leaf = {"key": "http.status_code", "value": rng.choice(STATUS_CODES), "operator": "exact"}
            filters = {"filterGroup": [{**leaf, "type": "log_attribute"}]}
            if rng.random() < 0.5:
                filters["serviceNames"] = [rng.choice(SERVICE_NAMES)]
        periods = rng.choice((1, 1, 2, 3, 5))
        bodies.append(
            {
                "name": f"bench alert {i}",
                "filters": filters,
                "threshold_count": rng.choice((5, 20, 100, 500, 2000)),
                "threshold_operator": "above" if rng.random() < 0.9 else "below",
                "window_minutes": rng.choice(WINDOWS),
                "evaluation_periods": periods,
                "datapoints_to_alarm": rng.randint(1, periods),
                "cooldown_minutes": rng.choice((0, 0, 30)),
            }
        )
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logs", type=int, default=10_000_000)
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=5, help="ticks after the first, 5 minutes apart")
    parser.add_argument(
        "--attribute-share", type=float, default=0.3, help="share of alerts filtering on an attribute (read the logs)"
    )
    parser.add_argument("--data-dir", type=Path, default=Path(".bench/query-data"))
    args = parser.parse_args()

    end = ensure_data(args.data_dir, args.logs)
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(
            data_dir=args.data_dir,
            database_url=f"sqlite:///{Path(scratch) / 'meta.sqlite3'}",
            alerts_scheduler=False,
            alerts_max_per_project=args.alerts,
            alerts_allow_http_loopback=True,
            hogql_parse_processes=0,
        )
        meta = MetaDB(settings.effective_database_url)
        meta.migrate()
        meta.bootstrap()  # project 1, the project the demo logs belong to
        statements = [0]
        event.listen(meta.engine, "before_cursor_execute", lambda *a: statements.__setitem__(0, statements[0] + 1))
        clock = _Clock(end.replace(second=0, microsecond=0) + dt.timedelta(seconds=17))
        services = build_services(settings, meta=meta, clock=clock)
        host, port = sink.server_address[:2]
        destination = parse_destination(
            {"type": "webhook", "webhook_url": f"http://{host!s}:{port}/hook"}, delivery_settings(settings)
        )
        for body in alert_bodies(args.alerts, args.attribute_share):
            alert = meta.alerts.create(
                1,
                plan_create(parse_alert(body, now=clock(), partial=False), now=clock()),
                created_by_id=None,
                max_per_team=args.alerts,
            )
            meta.alerts.add_destinations(1, alert.id, destination[0], destination[1], KINDS)
        scheduler = AlertScheduler(services)
        print(
            f"{args.alerts} alerts ({args.attribute_share:.0%} with an attribute filter) over {args.logs:,} logs "
            f"(project 1), clock at {clock.now.isoformat()}\n"
        )
        print(
            f"{'tick':<16} {'wall s':>7} {'count s':>8} {'send s':>7} {'checked':>8} {'store q':>8} "
            f"{'meta stmts':>11} {'notified':>9} {'firing':>7}"
        )
        walls = []
        try:
            for tick in range(args.ticks + 1):
                if tick:
                    clock.now = clock.now.replace(second=0) + dt.timedelta(minutes=5)
                statements[0] = 0
                report = scheduler.tick()
                firing = sum(1 for state in report.transitions.values() if state == "firing")
                label = "first (all new)" if tick == 0 else f"+{5 * tick} min"
                print(
                    f"{label:<16} {report.seconds:>7.2f} {report.store_seconds:>8.2f} {report.delivery_seconds:>7.2f} "
                    f"{report.checked:>8} {report.store_queries:>8} {statements[0]:>11} {report.notifications:>9} "
                    f"{firing:>7}"
                )
                if tick:
                    walls.append(report.seconds)
        finally:
            scheduler.stop()
            meta.close()
            sink.shutdown()
        if walls:
            print(f"\non the grid: p50 {statistics.median(walls):.2f} s, max {max(walls):.2f} s per tick")
        print(f"webhook deliveries received: {_Sink.received}")


if __name__ == "__main__":
    main()
