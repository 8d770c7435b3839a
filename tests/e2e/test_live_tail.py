"""Live tail against a real ``logpond serve``: logs keep arriving while a client polls with checkpoints.

The OpenTelemetry SDK (``LoggingHandler`` and ``BatchLogRecordProcessor`` exporting every 20 ms) ships
stdlib log records, some back-dated an hour and some stamped ahead, while a second thread posts raw
OTLP requests whose records run backwards in time. The server decodes in its worker process and inserts
through its writer as in production. A client polls throughout with the checkpoint of its last answer,
then drains once everything is stored; it must have received every log exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import warnings
from collections import Counter
from datetime import datetime
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from tests.e2e._otlp import export_request
from tests.e2e._server import Credentials, LogpondClient, ServerProcess

WINDOW = {"date_from": "-2h"}
SDK_LOGS = 600
RAW_REQUESTS, RAW_RECORDS = 30, 12


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Restamp(logging.Filter):
    """Moves every 7th record an hour back and every 11th twenty seconds ahead (the SDK stamps ``created``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        seq = int(record.args[0]) if isinstance(record.args, tuple) else 0
        if seq % 7 == 3:
            record.created -= 3600
        elif seq % 11 == 5:
            record.created += 20
        return True


def ship_with_sdk(server: ServerProcess, token: str) -> None:
    exporter = OTLPLogExporter(
        endpoint=f"{server.base_url}/i/v1/logs", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    provider = LoggerProvider(resource=Resource.create({"service.name": "tail-e2e"}))
    provider.add_log_record_processor(
        BatchLogRecordProcessor(exporter, schedule_delay_millis=20, max_export_batch_size=64)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    handler.addFilter(Restamp())
    logger = logging.getLogger(f"e2e.tail.{uuid.uuid4().hex[:8]}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for seq in range(SDK_LOGS):
            logger.info("tail %d", seq, extra={"e2e.id": f"sdk-{seq}"})
            if seq % 40 == 39:
                time.sleep(0.02)
        assert provider.force_flush(timeout_millis=15_000)
    finally:
        logger.removeHandler(handler)
        provider.shutdown()


def ship_raw(server: ServerProcess, token: str) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30, trust_env=False) as http:
        for n in range(RAW_REQUESTS):
            now_ns = time.time_ns()
            records = [
                (now_ns - i * 1_000_000, f"raw {n}.{i}", {"e2e.id": f"raw-{n}-{i}"}) for i in range(RAW_RECORDS)
            ]  # newest first: reverse timestamp order
            response = http.post(
                "/i/v1/logs",
                content=export_request(records),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"},
            )
            assert response.status_code == 200, response.text
            time.sleep(0.01)


def test_a_client_tailing_while_logs_arrive_gets_each_exactly_once(
    server: ServerProcess, credentials: Credentials, client: LogpondClient
) -> None:
    """Polling with the last checkpoint while the SDK and a raw sender ship logs returns each log once."""
    seed = export_request([(time.time_ns() - 1_000_000_000, "seed", {"e2e.id": "seed"})])
    response = httpx.post(
        f"{server.base_url}/i/v1/logs",
        content=seed,
        trust_env=False,
        headers={"Authorization": f"Bearer {credentials.token}", "Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 10
    rows: list[dict[str, Any]] = []
    while not rows and time.monotonic() < deadline:
        rows = client.query({"dateRange": WINDOW})["results"]
        time.sleep(0.05)
    assert [row["attributes"]["e2e.id"] for row in rows] == ["seed"]
    since = rows[0]["live_logs_checkpoint"]

    failures: list[BaseException] = []

    def run(target: Any) -> threading.Thread:
        def guarded() -> None:
            try:
                target(server, credentials.token)
            except BaseException as exc:  # reported below
                failures.append(exc)

        thread = threading.Thread(target=guarded)
        thread.start()
        return thread

    senders = [run(ship_with_sdk), run(ship_raw)]
    seen: list[str] = []
    checkpoints: list[str] = [since]
    polls_while_sending = 0

    def poll() -> bool:
        nonlocal since
        doc = client.query({"dateRange": WINDOW, "limit": 50, "liveLogsCheckpoint": since})
        assert doc["nextCursor"] is None
        for row in doc["results"]:
            assert row["live_logs_checkpoint"] == doc["results"][0]["live_logs_checkpoint"]
            assert moment(since) <= moment(row["observed_timestamp"]) < moment(row["live_logs_checkpoint"])
            seen.append(row["attributes"]["e2e.id"])
        if doc["results"]:
            since = doc["results"][0]["live_logs_checkpoint"]
            checkpoints.append(since)
        return bool(doc["results"]) or bool(doc["hasMore"])

    stop_at = time.monotonic() + 60
    while any(thread.is_alive() for thread in senders) and time.monotonic() < stop_at:
        poll()
        polls_while_sending += 1
        time.sleep(0.02)
    for thread in senders:
        thread.join(30)
    assert not failures, failures
    seen_while_sending = len(seen)
    client.wait_until_stable({"dateRange": WINDOW})
    for _ in range(100):
        if not poll():
            break
    else:
        raise AssertionError("the tail kept returning logs after ingestion stopped")

    expected = {f"sdk-{seq}" for seq in range(SDK_LOGS)}
    expected |= {f"raw-{n}-{i}" for n in range(RAW_REQUESTS) for i in range(RAW_RECORDS)}
    repeated = {log_id: count for log_id, count in Counter(seen).items() if count > 1}
    assert not repeated, f"returned more than once: {repeated}"
    assert set(seen) == expected, (sorted(expected - set(seen))[:20], sorted(set(seen) - expected)[:20])
    assert polls_while_sending > 5 and seen_while_sending > 0, (polls_while_sending, seen_while_sending)
    moments = [moment(c) for c in checkpoints]
    assert moments == sorted(moments), "a checkpoint went backwards"
