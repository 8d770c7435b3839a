"""The OpenTelemetry Python SDK, set up as PostHog's docs tell users to, ships logs to a real logpond.

``LoggingHandler`` comes from ``opentelemetry.sdk._logs``: that is where opentelemetry-sdk 1.45 (the
version we pin) provides it. The SDK marks it deprecated in favour of the separate
``opentelemetry-instrumentation-logging`` package, which is not a dependency of ours, so the warning is
silenced where the handler is built.
"""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from tests.e2e._server import Credentials, LogpondClient, ServerProcess

RESOURCE = {"service.name": "checkout", "deployment.environment": "prod"}
ZERO_TRACE_ID = "0" * 32
ZERO_SPAN_ID = "0" * 16


@dataclass
class Pipeline:
    """A stdlib logger wired to logpond through the SDK, remembering the records it emitted."""

    provider: LoggerProvider
    logger: logging.Logger
    emitted: list[logging.LogRecord] = field(default_factory=list)

    def filter(self, record: logging.LogRecord) -> bool:
        self.emitted.append(record)
        return True


@contextmanager
def otel_logging(
    server: ServerProcess, token: str, *, compression: Compression | None = None
) -> Iterator[Pipeline]:
    exporter = OTLPLogExporter(
        endpoint=f"{server.base_url}/i/v1/logs",
        headers={"Authorization": f"Bearer {token}"},
        compression=compression,
        timeout=10,
    )
    provider = LoggerProvider(resource=Resource.create(RESOURCE))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    logger = logging.getLogger(f"e2e.shop.{uuid.uuid4().hex[:8]}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    pipeline = Pipeline(provider=provider, logger=logger)
    handler.addFilter(pipeline.filter)
    logger.addHandler(handler)
    try:
        yield pipeline
    finally:
        logger.removeHandler(handler)
        provider.shutdown()


def fetch_all(client: LogpondClient, expected: int, **query: Any) -> list[dict[str, Any]]:
    """Poll (at most 10 s) until ``expected`` logs match, then return them oldest first."""
    query = {"dateRange": {"date_from": "-1h"}, **query}
    seen = client.wait_for_count(query, expected, timeout=10.0)
    assert seen == expected, f"{seen} of {expected} logs arrived within 10 s"
    doc = client.query({**query, "orderBy": "earliest", "limit": 100})
    assert doc["hasMore"] is False
    return doc["results"]  # type: ignore[no-any-return]


def test_stdlib_logging_through_the_sdk_arrives_with_levels_attributes_resource_and_trace_context(
    server: ServerProcess, credentials: Credentials, client: LogpondClient
) -> None:
    """Every level, extra attributes, the resource and the active span's ids survive the trip."""
    tracer = TracerProvider(resource=Resource.create(RESOURCE)).get_tracer("e2e.checkout")
    spans: dict[str, Any] = {}
    with otel_logging(server, credentials.token) as pipeline:
        log = pipeline.logger
        log.debug("cart loaded with %d items", 3, extra={"cart.items": 3, "user.tier": "gold"})
        with tracer.start_as_current_span("checkout") as span:
            spans["checkout"] = span.get_span_context()
            log.info("payment authorised", extra={"order.id": "o-1001", "amount": 12.5})
            with tracer.start_as_current_span("reserve-stock") as child:
                spans["reserve-stock"] = child.get_span_context()
                log.warning("inventory low", extra={"sku": "SKU-42", "remaining": 2})
            log.error("payment declined", extra={"http.status_code": 402, "retryable": False})
        try:
            raise RuntimeError("database unreachable")
        except RuntimeError:
            log.critical("checkout is down", exc_info=True, extra={"region": "eu-west-1"})
        assert pipeline.provider.force_flush(timeout_millis=10_000)
        emitted = {record.getMessage(): record for record in pipeline.emitted}

    expected_levels = {
        "cart loaded with 3 items": ("debug", 5),
        "payment authorised": ("info", 9),
        "inventory low": ("warn", 13),
        "payment declined": ("error", 17),
        "checkout is down": ("fatal", 21),
    }
    rows = {row["body"]: row for row in fetch_all(client, 5)}
    assert set(rows) == set(expected_levels)
    for body, (text, number) in expected_levels.items():
        row = rows[body]
        assert (row["severity_text"], row["severity_number"], row["level"]) == (text, number, text), body
        # the resource as the SDK built it: ours plus its telemetry.sdk.* keys
        assert row["resource_attributes"]["service.name"] == "checkout"
        assert row["resource_attributes"]["deployment.environment"] == "prod"
        assert row["resource_attributes"]["telemetry.sdk.language"] == "python"
        assert row["instrumentation_scope"].split("@")[0] == pipeline.logger.name
        # the timestamp is the moment logging created the record, not when it was exported
        created = emitted[body].created
        assert abs(_epoch(row["timestamp"]) - created) < 0.001, (row["timestamp"], created)

    # extra={...} arrives as attributes, non-strings as their JSON text
    assert rows["cart loaded with 3 items"]["attributes"]["cart.items"] == "3"
    assert rows["cart loaded with 3 items"]["attributes"]["user.tier"] == "gold"
    assert rows["payment authorised"]["attributes"]["order.id"] == "o-1001"
    assert rows["payment authorised"]["attributes"]["amount"] == "12.5"
    assert rows["inventory low"]["attributes"]["sku"] == "SKU-42"
    assert rows["inventory low"]["attributes"]["remaining"] == "2"
    assert rows["payment declined"]["attributes"]["http.status_code"] == "402"
    assert rows["payment declined"]["attributes"]["retryable"] == "false"
    fatal = rows["checkout is down"]["attributes"]
    assert fatal["region"] == "eu-west-1"
    assert fatal["exception.type"] == "RuntimeError"
    assert fatal["exception.message"] == "database unreachable"
    # the handler adds code.* attributes; that some arrive is enough, their names vary between versions
    assert any(key.startswith("code.") for key in fatal)

    # trace context: ids of the span active when the record was logged, 32/16 upper-case hex
    checkout, stock = spans["checkout"], spans["reserve-stock"]
    assert stock.trace_id == checkout.trace_id
    in_span = (("payment authorised", checkout), ("inventory low", stock), ("payment declined", checkout))
    for body, ctx in in_span:
        assert rows[body]["trace_id"] == format(ctx.trace_id, "032X"), body
        assert rows[body]["span_id"] == format(ctx.span_id, "016X"), body
    for body in ("cart loaded with 3 items", "checkout is down"):
        assert (rows[body]["trace_id"], rows[body]["span_id"]) == (ZERO_TRACE_ID, ZERO_SPAN_ID), body

    # the fields users filter on do what they say
    assert [r["body"] for r in fetch_all(client, 1, severityLevels=["warn"])] == ["inventory low"]
    assert len(fetch_all(client, 5, serviceNames=["checkout"])) == 5
    assert fetch_all(client, 0, serviceNames=["billing"]) == []
    in_trace = fetch_all(client, 3, filterGroup=[
        {"key": "trace_id", "value": format(checkout.trace_id, "032x"), "operator": "exact", "type": "log"}])
    assert {r["body"] for r in in_trace} == {"payment authorised", "inventory low", "payment declined"}
    declined = fetch_all(client, 1, filterGroup=[
        {"key": "http.status_code", "value": ["402"], "operator": "exact", "type": "log_attribute"}])
    assert [r["body"] for r in declined] == ["payment declined"]
    prod = fetch_all(client, 5, filterGroup=[{"key": "deployment.environment", "value": "prod",
                                              "operator": "exact", "type": "log_resource_attribute"}])
    assert len(prod) == 5


def test_gzip_compressed_exports_arrive(
    server: ServerProcess, credentials: Credentials, client: LogpondClient
) -> None:
    """An exporter configured with gzip compression is accepted like an uncompressed one."""
    with otel_logging(server, credentials.token, compression=Compression.Gzip) as pipeline:
        for i in range(50):
            pipeline.logger.info("compressed message %d %s", i, "x" * 200, extra={"seq": i})
        assert pipeline.provider.force_flush(timeout_millis=10_000)
    rows = fetch_all(client, 50)
    assert sorted(int(r["attributes"]["seq"]) for r in rows) == list(range(50))
    assert {r["body"] for r in rows} == {f"compressed message {i} {'x' * 200}" for i in range(50)}


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
