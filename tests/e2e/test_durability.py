"""A 200 from ``/i/v1/logs`` is a promise: the logs survive ``kill -9`` and a graceful restart, once each.

A separate sender process (``_sender.py``) posts 200-record OTLP batches from several threads and writes
each batch's ids to a file, fsynced, only after the server answered 200. The server is killed (SIGKILL or
SIGTERM) while that load runs, restarted on the same data directory, and then every acknowledged id must
be queryable, no id may be stored twice, and no request may be stored in part.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e._server import Credentials, LogpondClient, ServerProcess
from tests.e2e.conftest import StartServer

SENDER = Path(__file__).with_name("_sender.py")
BATCH = 200
LOAD_BEFORE_KILL_S = 2.0


@dataclass
class Round:
    run: str
    acked: dict[int, list[str]]  # batch -> its ids, for every batch answered with 200
    summary: dict[str, Any]


def run_filter(run: str) -> dict[str, Any]:
    return {
        "dateRange": {"date_from": "-1h"},
        "filterGroup": [{"key": "e2e.run", "value": run, "operator": "exact", "type": "log_attribute"}],
    }


def load_then_stop(server: ServerProcess, token: str, run: str, workdir: Path, *, graceful: bool) -> Round:
    """Run the sender, and after ~2 s of acknowledged load stop the server (SIGKILL or SIGTERM)."""
    acked_path = workdir / f"acked-{run}.txt"
    sender = subprocess.Popen(
        [sys.executable, str(SENDER), "--url", server.base_url, "--token", token, "--run", run,
         "--acked", str(acked_path), "--threads", "4", "--batch", str(BATCH),
         "--max-requests", "5000", "--max-seconds", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        started = time.monotonic()
        while not (acked_path.exists() and acked_path.stat().st_size) and time.monotonic() - started < 10:
            assert sender.poll() is None, f"sender exited early: {sender.communicate()}"
            time.sleep(0.05)
        assert acked_path.stat().st_size, "no batch was acknowledged within 10 s"
        time.sleep(max(0.0, started + LOAD_BEFORE_KILL_S - time.monotonic()))
        assert sender.poll() is None, "the sender finished before the server was stopped: nothing in flight"
        if graceful:
            # uvicorn re-raises the signal after a clean shutdown, so -SIGTERM is a clean exit too
            assert server.terminate() in (0, -signal.SIGTERM)
            assert "Application shutdown complete" in server.output()
        else:
            server.kill_9()
        out, err = sender.communicate(timeout=30)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait(timeout=10)
    assert sender.returncode == 0, err
    summary = json.loads(out)
    # the server went away mid-load: some thread saw its connection fail, nothing else went wrong
    assert summary["statuses"].get("connection error", 0) >= 1, summary
    assert set(summary["statuses"]) <= {"200", "connection error"}, summary
    acked: dict[int, list[str]] = {}
    for line in acked_path.read_text().splitlines():
        batch, *ids = line.split()
        assert len(ids) == BATCH
        acked[int(batch)] = ids
    assert len(acked) == summary["statuses"]["200"]
    return Round(run=run, acked=acked, summary=summary)


def stored_ids(client: LogpondClient, run: str) -> list[str]:
    """Every stored id of ``run`` (bodies are the ids), by a cursor walk, after ingestion has settled."""
    settled = client.wait_until_stable(run_filter(run))
    pages = client.walk({**run_filter(run), "limit": 2000, "orderBy": "earliest", "excludeAttributes": True})
    ids = [row["body"] for page in pages for row in page]
    assert len(ids) == settled, f"count says {settled}, the cursor walk found {len(ids)}"
    return ids


def check_round(client: LogpondClient, sent: Round, *, exact: bool) -> None:
    ids = stored_ids(client, sent.run)
    twice = [i for i, n in Counter(ids).items() if n > 1]
    assert not twice, f"{len(twice)} ids stored more than once, e.g. {twice[:3]}"
    stored = set(ids)
    acked = {i for batch in sent.acked.values() for i in batch}
    lost = acked - stored
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged logs are missing, e.g. {sorted(lost)[:3]}"
    # a request is stored whole or not at all; what was stored beyond the acknowledged batches can only
    # be requests that reached the write-ahead log as the server died (their answer never arrived)
    per_batch = Counter(i.split(".")[1] for i in stored)
    assert set(per_batch.values()) == {BATCH}, "a request was stored in part"
    unacknowledged = len(per_batch) - len(sent.acked)
    assert 0 <= unacknowledged <= 4, f"{unacknowledged} unacknowledged requests stored (4 threads)"
    if exact:
        assert stored == acked


def test_acknowledged_logs_survive_kill_9_twice(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Kill -9 under load, restart, repeat: every acknowledged log is there exactly once after each crash.

    For the first crash the writer is told to wait a minute before inserting, so at the kill every
    acknowledged row exists only in the write-ahead log; the second crash hits a server with the default
    200 ms insert interval, where most rows are in the store and the newest only in the log.
    """
    server = start_server(env={"LOGPOND_WRITER_FLUSH_INTERVAL_MS": "60000"})
    credentials = server.credentials()
    client = LogpondClient(server.base_url, credentials.key, credentials.project_id)
    rounds: list[Round] = []
    try:
        for run in ("crash1", "crash2"):
            rounds.append(load_then_stop(server, credentials.token, run, tmp_path, graceful=False))
            server.set_env(LOGPOND_WRITER_FLUSH_INTERVAL_MS=None)
            server.start()
            for sent in rounds:  # the latest run, and everything acknowledged before the earlier crash
                check_round(client, sent, exact=False)
    finally:
        client.close()
    assert all(len(r.acked) >= 10 for r in rounds), [r.summary for r in rounds]


def test_acknowledged_logs_survive_sigterm_under_load(
    server: ServerProcess, credentials: Credentials, client: LogpondClient, tmp_path: Path
) -> None:
    """SIGTERM under load finishes the requests in flight and loses nothing; a restart shows exactly them."""
    sent = load_then_stop(server, credentials.token, "graceful", tmp_path, graceful=True)
    server.start()
    check_round(client, sent, exact=True)
