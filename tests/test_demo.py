"""The demo log generator: exact schema, determinism, realistic content and valid OTLP."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from logpond.demo import (
    SERVICE_NAMES,
    _length_prefixed,
    _varints,
    generate_log_tables,
    generate_otlp_requests,
)
from logpond.store.schema import LOG_ARROW_SCHEMA

END = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
SEVERITY_NUMBERS = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "error": 17, "fatal": 21}


def _table(n: int, **kwargs: object) -> pa.Table:
    return pa.concat_tables(generate_log_tables(n, team_id=7, end=END, **kwargs))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def day() -> pa.Table:
    """One day of 200k records, shared by the content tests."""
    return _table(200_000).combine_chunks()


def _attribute_values(table: pa.Table, key: str) -> pa.Array:
    attributes = table["attributes"].combine_chunks()
    return attributes.items.filter(pc.equal(attributes.keys, key))


def test_tables_have_exactly_the_log_schema_and_the_requested_batch_sizes() -> None:
    """Every yielded table has LOG_ARROW_SCHEMA and batch_rows rows, except a shorter last one."""
    tables = list(generate_log_tables(70_001, team_id=3, end=END, batch_rows=20_000))
    assert [t.num_rows for t in tables] == [20_000, 20_000, 20_000, 10_001]
    for table in tables:
        assert table.schema.equals(LOG_ARROW_SCHEMA, check_metadata=True)
        assert pc.all(pc.equal(table["team_id"], 3)).as_py()


@pytest.mark.parametrize("n", [0, 1, 65_537])
def test_yields_exactly_n_records(n: int) -> None:
    """The total row count is exactly n, across internal block boundaries too."""
    assert sum(t.num_rows for t in generate_log_tables(n, team_id=1, end=END)) == n


def test_same_seed_gives_identical_output_and_batch_size_does_not_matter() -> None:
    """A seed reproduces the same rows whatever the batch size; another seed gives other rows."""
    first = _table(70_000, seed=5, batch_rows=100_000)
    again = _table(70_000, seed=5, batch_rows=9_999)
    other = _table(70_000, seed=6)
    assert first.equals(again)
    assert not first["body"].equals(other["body"])


def test_severity_mix_is_realistic_and_numbers_match_texts(day: pa.Table) -> None:
    """About 2% trace/debug, 80% info, 12% warn, 5% error and 0.2% fatal, with OTel severity numbers."""
    counts = Counter(day["severity_text"].to_pylist())
    share = {level: counts[level] / day.num_rows for level in SEVERITY_NUMBERS}
    assert 0.01 < share["trace"] + share["debug"] < 0.04
    assert 0.75 < share["info"] < 0.85
    assert 0.09 < share["warn"] < 0.15
    assert 0.035 < share["error"] < 0.08
    assert 0.0005 < share["fatal"] < 0.005
    pairs = set(zip(day["severity_text"].to_pylist(), day["severity_number"].to_pylist(), strict=True))
    assert pairs == set(SEVERITY_NUMBERS.items())


def test_payments_logs_more_errors_than_average(day: pa.Table) -> None:
    """Services differ in their error rates: payments errs more often than the fleet as a whole."""
    is_error = pc.equal(day["severity_text"], "error")
    payments = pc.equal(day["service_name"], "payments")
    payments_rate = pc.sum(pc.and_(is_error, payments)).as_py() / pc.sum(payments).as_py()
    overall_rate = pc.sum(is_error).as_py() / day.num_rows
    assert payments_rate > 1.3 * overall_rate


def test_about_half_the_records_carry_trace_and_span_ids(day: pa.Table) -> None:
    """Roughly half the records have a 16-byte trace id, an 8-byte span id and the sampled flag."""
    trace_lengths = Counter(pc.binary_length(day["trace_id"]).to_pylist())
    assert set(trace_lengths) == {0, 16}
    assert 0.4 < trace_lengths[16] / day.num_rows < 0.6
    traced = pc.equal(pc.binary_length(day["trace_id"]), 16)
    assert pc.all(pc.equal(traced, pc.equal(pc.binary_length(day["span_id"]), 8))).as_py()
    assert pc.all(pc.equal(traced, pc.equal(day["trace_flags"], 1))).as_py()


def test_twenty_services_run_as_a_few_pods_each(day: pa.Table) -> None:
    """All 20 services log, each from a small fixed set of pods whose resource maps repeat."""
    assert len(SERVICE_NAMES) == 20
    assert set(pc.unique(day["service_name"]).to_pylist()) == set(SERVICE_NAMES)
    resources = day["resource_attributes"]
    pod_names = pc.map_lookup(resources, "k8s.pod.name", "first")
    pods = pc.unique(pod_names).to_pylist()
    assert len(pods) < 100
    pods_per_service: Counter[str] = Counter()
    for pod in pods:
        resource = dict(resources[pc.index(pod_names, pod).as_py()].as_py())
        assert {
            "service.name",
            "service.version",
            "deployment.environment",
            "k8s.namespace.name",
            "k8s.pod.name",
            "host.name",
            "cloud.region",
        } <= set(resource)
        pods_per_service[resource["service.name"]] += 1
    assert max(pods_per_service.values()) <= 8
    prod = pc.equal(pc.map_lookup(resources, "deployment.environment", "first"), "prod")
    assert pc.sum(prod).as_py() > 0.95 * day.num_rows
    names = pc.equal(day["service_name"], pc.map_lookup(resources, "service.name", "first"))
    assert pc.all(names).as_py()
    scopes = pc.unique(day["instrumentation_scope"]).to_pylist()
    assert all(re.fullmatch(r".+@\d+\.\d+\.\d+", s) for s in scopes)


def test_timestamps_fill_the_window_in_order_with_a_daily_curve(day: pa.Table) -> None:
    """Timestamps lie in the day before `end`, ascend, and the busiest hour has well over the quietest."""
    timestamps = day["timestamp"]
    assert END - timedelta(days=1) <= timestamps[0].as_py() and timestamps[-1].as_py() < END
    assert pc.all(pc.less_equal(timestamps.slice(0, len(timestamps) - 1), timestamps.slice(1))).as_py()
    per_hour = pc.value_counts(pc.hour(timestamps)).field("counts").to_pylist()
    assert len(per_hour) == 24 and max(per_hour) > 2 * min(per_hour)
    delays = pc.subtract(day["observed_timestamp"], day["timestamp"]).cast(pa.int64())
    assert pc.min(delays).as_py() > 0 and pc.max(delays).as_py() <= 15_000_000


def test_a_short_window_ending_now_by_default() -> None:
    """With no `end`, the records fall in the `days` before the call."""
    before = datetime.now(UTC)
    table = pa.concat_tables(generate_log_tables(1000, team_id=1, days=0.05))
    after = datetime.now(UTC)
    timestamps = table["timestamp"].to_pylist()
    assert before - timedelta(days=0.05) <= min(timestamps) and max(timestamps) <= after


def test_error_bursts_stand_out(day: pa.Table) -> None:
    """Some service has a ten-minute incident with an error share several times its daily one."""
    windows = pc.divide(day["timestamp"].cast(pa.int64()), 600_000_000).to_pylist()
    services = day["service_name"].to_pylist()
    errors = pc.equal(day["severity_text"], "error").to_pylist()
    totals = Counter(zip(services, windows, strict=True))
    failing = Counter((s, w) for s, w, e in zip(services, windows, errors, strict=True) if e)
    daily = Counter(s for s, e in zip(services, errors, strict=True) if e)
    volume = Counter(services)
    worst = max((failing[k] / totals[k]) / (daily[k[0]] / volume[k[0]]) for k in totals if totals[k] >= 50)
    assert worst > 4


def test_uuids_are_unique_uuidv7_matching_the_timestamp(day: pa.Table) -> None:
    """Each uuid is a distinct version-7 UUID whose 48-bit prefix is the record's millisecond."""
    uuids = day["uuid"].to_pylist()
    assert len(set(uuids)) == len(uuids)
    millis = pc.divide(day["timestamp"].cast(pa.int64()), 1000).to_pylist()
    for text, ms in zip(uuids[::997], millis[::997], strict=True):
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", text)
        assert int(text[:8] + text[9:13], 16) == ms


def test_user_ids_have_high_cardinality(day: pa.Table) -> None:
    """user.id is common and takes tens of thousands of distinct values even in 200k records."""
    users = _attribute_values(day, "user.id")
    assert len(users) > 0.4 * day.num_rows
    assert len(pc.unique(users)) > 30_000


def test_records_carry_a_realistic_handful_of_attributes(day: pa.Table) -> None:
    """Every record has 5 to 10 attributes, and HTTP records carry method, route and status."""
    attributes = day["attributes"].combine_chunks()
    counts = pc.subtract(attributes.offsets.slice(1), attributes.offsets.slice(0, len(attributes)))
    assert pc.min(counts).as_py() >= 5 and pc.max(counts).as_py() <= 10
    routes = set(_attribute_values(day, "http.route").to_pylist())
    assert 40 <= len(routes) <= 60
    assert set(_attribute_values(day, "http.status_code").to_pylist()) >= {"200", "404", "500", "503"}
    assert {"postgresql", "mysql", "redis"} <= set(_attribute_values(day, "db.system").to_pylist())
    assert "orders.created" in set(_attribute_values(day, "messaging.destination").to_pylist())
    assert len(set(_attribute_values(day, "exception.type").to_pylist())) >= 5


def test_bodies_cover_the_usual_kinds_of_log_lines(day: pa.Table) -> None:
    """Access lines, SQL timings, Kafka, cache, auth, timeouts, stack traces and JSON bodies all occur."""
    bodies = day["body"].to_pylist()
    patterns = {
        "access line": r"^(GET|POST|PUT|PATCH|DELETE) /\S+ \d{3} \d+ms$",
        "sql": r"^SELECT .* took \d+ms",
        "kafka": r"^consumed message from [\w.]+ partition=\d offset=\d+",
        "cache": r"^cache (hit|miss) key=",
        "auth": r"^login (succeeded|failed) for user \d+",
        "timeout": r"^upstream timeout after 30s calling [\w-]+$",
        "python trace": r"\nTraceback \(most recent call last\):\n  File ",
        "java trace": r"\n\tat com\.acme\.",
        "json": r'^\{"level":"(info|warn|error|debug|trace|fatal)","time":\d{13},"msg":',
        "logfmt": r"^level=[A-Z]+ msg=",
    }
    for kind, pattern in patterns.items():
        assert any(re.search(pattern, b) for b in bodies), kind
    for body, severity in zip(bodies, day["severity_text"].to_pylist(), strict=True):
        if body.startswith("{"):
            assert json.loads(body)["level"] == severity
    assert len(set(bodies)) > 0.5 * len(bodies)


def test_otlp_requests_parse_and_carry_the_same_records() -> None:
    """OTLP requests parse, hold batch_records records grouped one ResourceLogs per pod, typed values."""
    requests = list(generate_otlp_requests(5_000, end=END, seed=3, batch_records=1_000))
    table = _table(5_000, seed=3)
    assert len(requests) == 5
    seen: list[tuple[int, str, str, str, dict[str, object]]] = []
    for payload in requests:
        request = ExportLogsServiceRequest.FromString(payload)
        assert request.SerializeToString() == payload  # canonical wire format, nothing lost or extra
        pods = [
            dict((kv.key, kv.value.string_value) for kv in rl.resource.attributes)["k8s.pod.name"]
            for rl in request.resource_logs
        ]
        assert len(pods) == len(set(pods))
        assert sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs) == 1_000
        for resource_logs in request.resource_logs:
            (scope_logs,) = resource_logs.scope_logs
            service = dict((kv.key, kv.value.string_value) for kv in resource_logs.resource.attributes)[
                "service.name"
            ]
            assert scope_logs.scope.name and scope_logs.scope.version
            for record in scope_logs.log_records:
                assert record.severity_number == SEVERITY_NUMBERS[record.severity_text.lower()]
                attributes = {
                    kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in record.attributes
                }
                if "http.status_code" in attributes:
                    assert isinstance(attributes["http.status_code"], int)
                if "http.method" in attributes:
                    assert isinstance(attributes["http.method"], str)
                seen.append(
                    (
                        record.time_unix_nano,
                        service,
                        record.body.string_value,
                        record.trace_id.hex(),
                        attributes,
                    )
                )
    expected = []
    for row in table.to_pylist():
        stamp = row["timestamp"]
        ns = (stamp - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
        expected.append(
            (
                ns,
                row["service_name"],
                row["body"],
                row["trace_id"].hex(),
                {k: str(v) for k, v in row["attributes"]},
            )
        )
    normalised = [
        (t, s, b, tr, {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in a.items()})
        for t, s, b, tr, a in seen
    ]

    def key(item: tuple[int, str, str, str, dict[str, str]]) -> tuple[int, str, str]:
        return item[0], item[1], item[2]

    assert sorted(normalised, key=key) == sorted(expected, key=key)


@pytest.mark.parametrize("limit", [1 << 14, 1 << 35])
def test_wire_helpers_match_protobuf_inside_and_beyond_the_vectorised_range(limit: int) -> None:
    """Varints and length-prefixed strings equal protobuf's own encoding, short or long."""
    numbers = [0, 1, 127, 128, 300, 16_383, 16_384, limit - 1, limit]
    expected = [AnyValue(int_value=v).SerializeToString()[1:] for v in numbers]
    assert _varints(pa.array(numbers, pa.int64())).to_pylist() == expected
    texts = [b"", b"x", b"y" * 200, b"z" * (limit - 1 if limit < 1 << 20 else 20_000)]
    encoded = _length_prefixed(b"\x0a", pa.array(texts, pa.binary())).to_pylist()
    assert encoded == [AnyValue(string_value=t.decode()).SerializeToString() for t in texts]


@pytest.mark.parametrize(
    "kwargs",
    [{"n": -1}, {"n": 10, "days": 0}, {"n": 10, "end": datetime(2026, 1, 1)}, {"n": 10, "batch_rows": 0}],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, object]) -> None:
    """Negative counts, empty windows, naive end times and empty batches raise ValueError."""
    arguments: dict[str, object] = {"team_id": 1, "end": END, **kwargs}
    with pytest.raises(ValueError):
        list(generate_log_tables(**arguments))  # type: ignore[arg-type]
