"""A deterministic generator of realistic OpenTelemetry logs, for benchmarks, tests and the demo UI.

The model is a small fictional shop: 20 services (gateway, checkout, payments, auth, search, …) running as
a fixed set of Kubernetes pods, each writing the kinds of lines such services write (HTTP access lines, SQL
timings, Kafka consumption, cache hits and misses, auth events, timeouts, multi-line stack traces, JSON and
logfmt bodies), with a diurnal traffic curve, a per-service severity mix and a few error bursts a day.

Speed comes from doing no per-record Python work. Everything a record can look like is compiled once
into a *world*: a few thousand record *shapes* (severity, body template, attribute template), each template
a list of codes that point either at a pool of fixed strings or at a per-record variable (user id, duration,
request id, …). A block of rows then samples shape indices through 65,536-slot lookup tables indexed by
random ``uint16`` values, and assembles bodies and attribute maps with vectorised Arrow kernels (``take``
over list arrays, ``binary_join``, ``MapArray.from_arrays``). The OTLP encoder likewise writes protobuf
wire format with Arrow kernels. Kernels release the GIL, so blocks are built on a few threads.

Output is sorted by timestamp (ascending) across all batches, and depends only on ``(n, days, seed, end)``:
rows are produced in fixed internal blocks whose randomness is seeded by ``(seed, block index)``, so neither
the batch size nor the thread count changes the content, and :func:`generate_otlp_requests` carries exactly
the records :func:`generate_log_tables` yields for the same arguments. Random integers are read from
``random.Random.randbytes`` as little-endian words, so results are identical on every little-endian machine.
The world (services, pods, versions, templates) is the same for every seed.
"""

from __future__ import annotations

import array
import binascii
import bisect
import functools
import json
import math
import os
import random
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from statistics import NormalDist
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from logpond.store.schema import LOG_ARROW_SCHEMA

__all__ = ["SERVICE_NAMES", "generate_log_tables", "generate_otlp_requests"]

# ---------------------------------------------------------------------------------------------------------
# Per-record variables. A template refers to one as «name»; guillemets never occur in real content, so a
# template needs no escaping and JSON encoding leaves the markers intact.
# ---------------------------------------------------------------------------------------------------------

_VARIABLES: tuple[str, ...] = (
    "user",  # user id, ~100k distinct, skewed towards heavy users
    "req",  # request id, 16 hex chars, shared by the records of one request group (like the trace id)
    "dur",  # duration in ms, log-normal around the shape's median
    "rid",  # entity id in URLs and messages (orders, products, payments…)
    "offset",  # Kafka offset, increasing over time
    "rows",  # small counts: rows returned, batch sizes, items
    "ip",  # client or peer address
    "size",  # byte sizes
    "tsms",  # the record's own timestamp in epoch ms (JSON bodies carry it, like pino)
    "amount",  # money, e.g. 49.90
    "ua",  # user agent
)
_VAR_CODE = {name: index for index, name in enumerate(_VARIABLES)}
_USER, _REQ, _DUR, _RID, _OFFSET, _ROWS, _IP, _SIZE, _TSMS, _AMOUNT, _UA = (f"«{v}»" for v in _VARIABLES)
_VAR_PATTERN = re.compile("«([a-z]+)»")

# OTLP attribute types: everything else is a string. In the Arrow table all values are text (the store
# keeps non-string OTLP values JSON-encoded, which for these is the same text).
_INT_KEYS = frozenset(
    {
        "http.status_code",
        "duration_ms",
        "db.rows",
        "http.response.body.size",
        "messaging.kafka.partition",
        "messaging.kafka.offset",
        "retry.attempt",
        "batch.size",
        "search.hits",
        "image.bytes",
        "auth.attempt",
        "ml.candidates",
        "inventory.quantity",
        "cart.quantity",
        "order.items",
        "messaging.lag",
        "messaging.message.body.size",
        "pool.active",
        "pool.waiting",
        "server.port",
        "code.lineno",
        "process.exit_code",
        "cache.ttl_s",
        "ratelimit.limit",
        "process.memory.usage",
        "container.memory.limit",
    }
)
_FLOAT_KEYS = frozenset({"payment.amount", "fraud.score", "order.total", "shipping.cost"})
_BOOL_KEYS = frozenset({"cache.hit"})

_SEVERITY_NUMBERS: dict[str, int] = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "error": 17, "fatal": 21}
_SEVERITY_ORDER: tuple[str, ...] = tuple(_SEVERITY_NUMBERS)

# Overall target ≈ 2% trace/debug, 80% info, 12% warn, 5% error, 0.2% fatal; services override below.
_BASE_SEVERITY: dict[str, float] = {
    "trace": 0.004,
    "debug": 0.016,
    "info": 0.81,
    "warn": 0.12,
    "error": 0.048,
    "fatal": 0.002,
}
# The mix of the one service an error burst hits, while the burst lasts.
_BURST_SEVERITY: dict[str, float] = {
    "trace": 0.0,
    "debug": 0.005,
    "info": 0.355,
    "warn": 0.2,
    "error": 0.42,
    "fatal": 0.02,
}
# A burst also multiplies the hit service's volume (retries, error logging, clients hammering).
_BURST_VOLUME = 5.0
_BURST_CANDIDATES = ("payments", "checkout", "search", "inventory", "auth", "shipping", "orders", "cart")

_USER_COUNT = 100_000
_BLOCK = 65_536  # rows per internal block: the unit of randomness, so batch sizes never change content
_SLOTS = 1 << 16  # lookup-table size: indexed directly by a random uint16
_REQUEST_GROUP = 4  # consecutive records share a trace id and request id, like the lines of one request
# Shapes say how likely their records are to run inside a traced request; only this share of requests is
# traced at all (the rest come from uninstrumented callers), which puts trace ids on about half the records.
_TRACED_SHARE = 0.72


# ---------------------------------------------------------------------------------------------------------
# The content model: services, routes, shapes.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Service:
    name: str
    language: str  # python | java | go | node: decides text style, stack traces, scope names
    weight: float  # share of total traffic
    namespace: str
    style: str  # text | json | logfmt
    pods: int
    kinds: dict[str, float]  # content kind -> share of this service's records
    upstreams: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    db_system: str = "postgresql"
    consumes: tuple[str, ...] = ()
    produces: tuple[str, ...] = ()
    cache_key: str = ""  # cache key template for the cache kind
    staging: bool = False  # one extra low-traffic pod in a staging namespace
    eu: bool = False  # some pods run in eu-west-1
    severity: dict[str, float] = field(default_factory=dict)  # overrides of _BASE_SEVERITY


_SERVICES: tuple[_Service, ...] = (
    _Service(
        "api-gateway",
        "go",
        18,
        "edge",
        "text",
        6,
        {"http": 0.80, "client": 0.10, "cache": 0.04, "generic": 0.06},
        upstreams=("checkout", "payments", "orders", "catalog", "search", "auth"),
        cache_key=f"ratelimit:{_IP}",
        eu=True,
        severity={"warn": 0.13, "info": 0.793},
    ),
    _Service(
        "web-frontend",
        "node",
        8,
        "web",
        "json",
        4,
        {"http": 0.75, "client": 0.15, "generic": 0.10},
        upstreams=("catalog", "cart", "user-profile", "recommendations", "search"),
        eu=True,
    ),
    _Service(
        "checkout",
        "java",
        6,
        "shop",
        "text",
        3,
        {"http": 0.35, "db": 0.2, "client": 0.2, "queue_produce": 0.1, "cache": 0.05, "generic": 0.1},
        upstreams=("payments", "inventory", "pricing", "shipping", "fraud-detection"),
        tables=("checkout_sessions", "orders"),
        produces=("checkout.completed",),
        cache_key=f"checkout:session:{_REQ}",
        staging=True,
    ),
    _Service(
        "payments",
        "java",
        4,
        "payments",
        "text",
        3,
        {"http": 0.3, "payments": 0.25, "db": 0.2, "client": 0.1, "queue_produce": 0.05, "generic": 0.1},
        upstreams=("stripe-api", "adyen-api"),
        tables=("payments", "refunds", "ledger_entries"),
        produces=("payments.settled",),
        staging=True,
        severity={"info": 0.746, "warn": 0.15, "error": 0.08},
    ),
    _Service(
        "auth",
        "go",
        7,
        "identity",
        "text",
        3,
        {"http": 0.3, "auth": 0.35, "cache": 0.15, "db": 0.1, "generic": 0.1},
        tables=("users", "sessions", "api_keys"),
        cache_key=f"session:{_REQ}",
        staging=True,
    ),
    _Service(
        "search",
        "python",
        7,
        "search",
        "text",
        4,
        {"http": 0.35, "search": 0.4, "cache": 0.1, "generic": 0.15},
        cache_key=f"search:results:{_RID}",
        eu=True,
    ),
    _Service(
        "catalog",
        "python",
        6,
        "shop",
        "text",
        3,
        {"http": 0.4, "db": 0.3, "cache": 0.2, "generic": 0.1},
        tables=("products", "categories", "product_images"),
        db_system="mysql",
        cache_key=f"product:{_RID}",
        eu=True,
    ),
    _Service(
        "inventory",
        "java",
        4,
        "shop",
        "text",
        2,
        {"http": 0.25, "db": 0.3, "queue_consume": 0.2, "inventory": 0.15, "generic": 0.1},
        tables=("stock_levels", "reservations"),
        consumes=("orders.created",),
    ),
    _Service(
        "orders",
        "python",
        6,
        "shop",
        "text",
        3,
        {"http": 0.35, "db": 0.3, "orders": 0.15, "queue_produce": 0.1, "generic": 0.1},
        tables=("orders", "order_items", "order_events"),
        produces=("orders.created",),
        staging=True,
    ),
    _Service(
        "cart",
        "node",
        5,
        "shop",
        "json",
        3,
        {"http": 0.4, "cache": 0.3, "cart": 0.2, "generic": 0.1},
        cache_key=f"cart:{_USER}",
    ),
    _Service(
        "notifications",
        "python",
        3,
        "messaging",
        "text",
        2,
        {"queue_consume": 0.45, "email": 0.35, "generic": 0.2},
        consumes=("orders.created", "payments.settled", "shipments.updated"),
    ),
    _Service(
        "email-worker",
        "python",
        2,
        "messaging",
        "text",
        2,
        {"queue_consume": 0.4, "email": 0.45, "generic": 0.15},
        consumes=("emails.outbound",),
    ),
    _Service(
        "recommendations",
        "python",
        3,
        "ml",
        "json",
        3,
        {"http": 0.3, "inference": 0.4, "cache": 0.15, "generic": 0.15},
        cache_key=f"recs:user:{_USER}",
    ),
    _Service(
        "user-profile",
        "go",
        4,
        "identity",
        "logfmt",
        2,
        {"http": 0.4, "db": 0.3, "cache": 0.2, "generic": 0.1},
        tables=("profiles", "addresses"),
        cache_key=f"user:{_USER}:profile",
    ),
    _Service(
        "shipping",
        "java",
        2,
        "logistics",
        "text",
        2,
        {"http": 0.3, "shipping": 0.25, "client": 0.25, "queue_produce": 0.1, "generic": 0.1},
        upstreams=("ups-api", "fedex-api", "dhl-api"),
        produces=("shipments.updated",),
        severity={"info": 0.776, "warn": 0.13, "error": 0.07},
    ),
    _Service(
        "pricing",
        "go",
        3,
        "shop",
        "logfmt",
        2,
        {"http": 0.45, "cache": 0.35, "db": 0.1, "generic": 0.1},
        tables=("price_rules",),
        cache_key=f"price:SKU-{_RID}",
    ),
    _Service(
        "fraud-detection",
        "python",
        2,
        "payments",
        "json",
        2,
        {"http": 0.3, "fraud": 0.45, "db": 0.1, "generic": 0.15},
        tables=("risk_signals",),
    ),
    _Service(
        "analytics-ingest",
        "go",
        5,
        "data",
        "json",
        4,
        {"http": 0.3, "batch": 0.4, "queue_produce": 0.2, "generic": 0.1},
        produces=("events.raw",),
        severity={"debug": 0.03, "info": 0.789},
    ),
    _Service(
        "scheduler",
        "python",
        1,
        "platform",
        "text",
        1,
        {"jobs": 0.7, "db": 0.15, "generic": 0.15},
        tables=("carts", "sessions", "exports"),
    ),
    _Service(
        "image-resizer",
        "node",
        2,
        "media",
        "json",
        2,
        {"http": 0.5, "images": 0.35, "generic": 0.15},
    ),
)

SERVICE_NAMES: tuple[str, ...] = tuple(s.name for s in _SERVICES)

# (owner, method, route, success status, relative traffic). Public routes also pass through the gateway.
_ROUTES: tuple[tuple[str, str, str, int, float], ...] = (
    ("checkout", "POST", "/api/v1/checkout", 201, 3),
    ("checkout", "GET", "/api/v1/checkout/{session_id}", 200, 5),
    ("checkout", "POST", "/api/v1/checkout/{session_id}/confirm", 200, 2),
    ("payments", "POST", "/api/v1/payments", 201, 3),
    ("payments", "GET", "/api/v1/payments/{payment_id}", 200, 2),
    ("payments", "POST", "/api/v1/payments/{payment_id}/refund", 200, 0.3),
    ("payments", "POST", "/webhooks/stripe", 200, 1.5),
    ("auth", "POST", "/api/v1/auth/login", 200, 4),
    ("auth", "POST", "/api/v1/auth/logout", 204, 1),
    ("auth", "POST", "/api/v1/auth/token/refresh", 200, 6),
    ("auth", "GET", "/api/v1/auth/session", 200, 9),
    ("auth", "POST", "/api/v1/auth/mfa/verify", 200, 0.6),
    ("search", "GET", "/api/v1/search", 200, 10),
    ("search", "GET", "/api/v1/search/suggest", 200, 14),
    ("catalog", "GET", "/api/v1/products", 200, 9),
    ("catalog", "GET", "/api/v1/products/{product_id}", 200, 16),
    ("catalog", "GET", "/api/v1/categories", 200, 3),
    ("catalog", "GET", "/api/v1/categories/{category_id}/products", 200, 6),
    ("inventory", "GET", "/api/v1/inventory/{sku}", 200, 5),
    ("inventory", "PUT", "/api/v1/inventory/{sku}", 200, 0.8),
    ("inventory", "GET", "/internal/inventory/reservations", 200, 1),
    ("orders", "GET", "/api/v1/orders", 200, 5),
    ("orders", "GET", "/api/v1/orders/{order_id}", 200, 6),
    ("orders", "POST", "/api/v1/orders", 201, 2.5),
    ("orders", "DELETE", "/api/v1/orders/{order_id}", 204, 0.2),
    ("orders", "GET", "/api/v1/orders/{order_id}/items", 200, 3),
    ("cart", "GET", "/api/v1/cart", 200, 11),
    ("cart", "POST", "/api/v1/cart/items", 201, 5),
    ("cart", "DELETE", "/api/v1/cart/items/{item_id}", 204, 1.5),
    ("cart", "POST", "/api/v1/cart/coupon", 200, 0.7),
    ("notifications", "GET", "/api/v1/notifications", 200, 2),
    ("recommendations", "GET", "/api/v1/recommendations", 200, 6),
    ("recommendations", "GET", "/api/v1/recommendations/similar/{product_id}", 200, 5),
    ("user-profile", "GET", "/api/v1/users/me", 200, 8),
    ("user-profile", "PATCH", "/api/v1/users/me", 200, 0.6),
    ("user-profile", "GET", "/api/v1/users/{user_id}/addresses", 200, 2),
    ("user-profile", "POST", "/api/v1/users/{user_id}/addresses", 201, 0.4),
    ("shipping", "POST", "/api/v1/shipping/quote", 200, 3),
    ("shipping", "GET", "/api/v1/shipping/track/{tracking_id}", 200, 2),
    ("pricing", "GET", "/internal/pricing/{sku}", 200, 8),
    ("pricing", "POST", "/internal/pricing/batch", 200, 3),
    ("fraud-detection", "POST", "/internal/fraud/score", 200, 3),
    ("analytics-ingest", "POST", "/v1/events", 200, 10),
    ("analytics-ingest", "POST", "/v1/batch", 200, 4),
    ("image-resizer", "GET", "/img/{size}/{image_id}", 200, 12),
    ("web-frontend", "GET", "/", 200, 6),
    ("web-frontend", "GET", "/products/{slug}", 200, 10),
    ("web-frontend", "GET", "/cart", 200, 4),
    ("web-frontend", "GET", "/checkout", 200, 2),
    ("web-frontend", "GET", "/account", 200, 1.5),
)
# Routes that carry no logged-in user.
_ANONYMOUS_ROUTES = frozenset(
    {"/api/v1/auth/login", "/webhooks/stripe", "/v1/events", "/v1/batch", "/img/{size}/{image_id}", "/"}
)
# What a route parameter looks like in a concrete path.
_PATH_PARAMS: dict[str, str] = {
    "sku": f"SKU-{_RID}",
    "slug": f"p-{_RID}",
    "session_id": f"cs_{_REQ}",
    "tracking_id": f"1Z{_RID}",
    "size": "640x480",
    "image_id": f"{_RID}.jpg",
    "user_id": _USER,
}


@dataclass(frozen=True)
class _Shape:
    """One way a record can look; per-record variation comes from «variables» in its templates."""

    severity: str
    weight: float  # relative frequency within its kind
    text: str  # body for text-style services (plus the stack, if any)
    attrs: tuple[tuple[str, str], ...]  # values are literals or exactly one «variable»
    msg: str | None = None  # the constant message structured (json/logfmt) services log instead
    stack: str | None = None
    trace: float = 0.6  # probability the record carries a trace context
    dur_ms: float = 20.0  # median of «dur»
    event: str = ""
    fields: tuple[tuple[str, str], ...] = ()  # extra body fields of structured styles (any template)


def _status_mix(method: str, ok: int, has_param: bool) -> list[tuple[int, float]]:
    mix = [(ok, 0.9), (400, 0.012), (401, 0.01), (403, 0.004), (404, 0.02 if has_param else 0.003)]
    if method == "GET":
        mix.append((304, 0.03))
    if method in ("POST", "PUT", "PATCH"):
        mix += [(409, 0.005), (422, 0.015)]
    mix += [(429, 0.004), (500, 0.008), (502, 0.002), (503, 0.003), (504, 0.002)]
    return mix


def _severity_for_status(status: int) -> str:
    return "info" if status < 400 else "warn" if status < 500 else "error"


def _concrete_path(route: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: _PATH_PARAMS.get(m.group(1), _RID), route)


def _camel(words: Sequence[str]) -> str:
    return "".join(w[:1].upper() + w[1:] for w in words)


def _handler_name(language: str, method: str, route: str) -> str:
    """A plausible code.function for the handler of a route, in the service's language conventions."""
    parts = [p for p in route.split("/") if p and p not in ("api", "v1", "internal")]
    nouns = [p for p in parts if not p.startswith("{")] or ["index"]
    noun = re.sub(r"[^a-z]", "_", nouns[-1].lower())
    has_param = route.endswith("}")
    verb = {
        "GET": "get" if has_param else "list",
        "POST": "create",
        "PUT": "update",
        "PATCH": "update",
        "DELETE": "delete",
    }[method]
    if has_param and noun.endswith("s"):
        noun = noun[:-1]
    if language == "python":
        return f"{verb}_{noun}"
    words = noun.split("_")
    if language == "java":
        return f"{_camel(words)}Controller.{verb}{_camel(words)}"
    if language == "go":
        return f"handlers.{_camel([verb])}{_camel(words)}"
    return f"{_camel(words)}Controller.{verb}"


def _http_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    gateway = svc.name == "api-gateway"
    routes = [r for r in _ROUTES if (r[0] == svc.name or (gateway and not r[2].startswith("/internal")))]
    routes.append((svc.name, "GET", "/healthz", 200, 0.0))
    shapes: list[_Shape] = []
    total = sum(r[4] for r in routes)
    for owner, method, route, ok, traffic in routes:
        if route == "/healthz":
            # Kubernetes probes: frequent but logged at debug by most services.
            shapes.append(
                _Shape(
                    "debug",
                    0.02,
                    f"GET /healthz 200 {_DUR}ms",
                    (
                        ("http.method", "GET"),
                        ("http.route", "/healthz"),
                        ("http.status_code", "200"),
                        ("duration_ms", _DUR),
                        ("client.address", "10.0.0.1"),
                    ),
                    msg="health check",
                    trace=0.0,
                    dur_ms=1,
                )
            )
            continue
        path = _concrete_path(route)
        func = _handler_name(svc.language, method, route)
        median = rng.choice((8, 15, 25, 40, 70, 120)) * (3 if method != "GET" else 1)
        for status, share in _status_mix(method, ok, "{" in route):
            factor = 0.4 if 400 <= status < 500 else 5 if status >= 500 else 1
            dur = 30000 if status == 504 else median * factor
            if gateway:
                text = f"{method} {path} {status} {_DUR}ms"
            elif svc.language == "python":
                text = f'{_IP} - - "{method} {path} HTTP/1.1" {status} {_SIZE} {_DUR}ms'
            elif svc.language == "java":
                text = f"Completed {method} {path} with status {status} in {_DUR}ms"
            else:
                text = f"{method} {path} {status} {_DUR}ms"
            attrs = [
                ("http.method", method),
                ("http.route", route),
                ("http.status_code", str(status)),
                ("duration_ms", _DUR),
                ("request.id", _REQ),
            ]
            if route not in _ANONYMOUS_ROUTES:
                attrs.append(("user.id", _USER))
            if gateway:
                attrs += [("upstream.service", owner), ("client.address", _IP), ("user_agent.original", _UA)]
            else:
                attrs += [("code.function", func), ("http.response.body.size", _SIZE)]
            shapes.append(
                _Shape(
                    _severity_for_status(status),
                    traffic / total * share,
                    text,
                    tuple(attrs),
                    msg="request completed" if status < 500 else "request failed",
                    trace=0.8,
                    dur_ms=dur,
                    fields=(("path", path),),
                )
            )
    return shapes


def _client_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    shapes: list[_Shape] = []
    for upstream in svc.upstreams:
        external = upstream.endswith("-api")
        host = f"api.{upstream[:-4]}.com" if external else f"{upstream}.{_namespace_of(upstream)}.svc.cluster.local"
        method = "POST" if upstream in ("payments", "stripe-api", "adyen-api", "fraud-detection") else "GET"
        base = (("peer.service", upstream), ("server.address", host), ("http.method", method), ("request.id", _REQ))
        ip = f"10.0.{rng.randint(1, 40)}.{rng.randint(2, 250)}"
        w = 1.0 / len(svc.upstreams)
        median = 180.0 if external else 25.0
        shapes += [
            _Shape(
                "info",
                w * 0.93,
                f"{upstream} responded 200 in {_DUR}ms",
                (*base, ("http.status_code", "200"), ("duration_ms", _DUR)),
                msg="upstream call completed",
                trace=0.9,
                dur_ms=median,
            ),
            _Shape(
                "debug",
                w * 0.02,
                f"calling {upstream} {method} https://{host}/",
                (*base, ("user.id", _USER)),
                msg="upstream call started",
                trace=0.9,
            ),
            _Shape(
                "warn",
                w * 0.03,
                f"retrying call to {upstream} (attempt 2/3) after 503 Service Unavailable",
                (*base, ("retry.attempt", "2"), ("http.status_code", "503"), ("duration_ms", _DUR)),
                msg="retrying upstream call",
                trace=0.9,
                dur_ms=median * 3,
            ),
            _Shape(
                "warn",
                w * 0.002,
                f"circuit breaker half-open for {upstream}, allowing trial request",
                (*base, ("circuit.state", "half-open")),
                msg="circuit breaker half-open",
                trace=0.2,
            ),
            _Shape(
                "error",
                w * 0.012,
                f"upstream timeout after 30s calling {upstream}",
                (*base, ("error.type", "timeout"), ("duration_ms", _DUR)),
                msg="upstream timeout",
                trace=0.9,
                dur_ms=30000,
            ),
            _Shape(
                "error",
                w * 0.004,
                f"connection refused: dial tcp {ip}:8080: connect: connection refused (calling {upstream})",
                (*base, ("error.type", "connection_refused"), ("server.port", "8080")),
                msg="upstream connection failed",
                trace=0.9,
            ),
            _Shape(
                "error",
                w * 0.001,
                f"circuit breaker open for {upstream}: 52% of calls failed in the last 60s",
                (*base, ("circuit.state", "open"), ("error.type", "circuit_open")),
                msg="circuit breaker opened",
                trace=0.1,
            ),
        ]
    return shapes


_TABLE_COLUMNS: dict[str, str] = {
    "orders": "id, user_id, status, total_cents, created_at",
    "order_items": "id, order_id, sku, quantity, unit_price_cents",
    "order_events": "id, order_id, type, payload",
    "checkout_sessions": "id, user_id, cart_id, status, expires_at",
    "payments": "id, order_id, provider, status, amount_cents",
    "refunds": "id, payment_id, amount_cents, reason",
    "ledger_entries": "id, account_id, amount_cents, direction",
    "users": "id, email, password_hash, mfa_enabled",
    "sessions": "id, user_id, expires_at, ip",
    "api_keys": "id, user_id, prefix, scopes",
    "products": "id, slug, title, price_cents, category_id",
    "categories": "id, parent_id, name",
    "product_images": "id, product_id, url, width, height",
    "stock_levels": "sku, warehouse_id, on_hand, reserved",
    "reservations": "id, sku, order_id, quantity, expires_at",
    "profiles": "user_id, display_name, locale, marketing_opt_in",
    "addresses": "id, user_id, line1, city, postcode, country",
    "price_rules": "id, sku, currency, amount_cents, valid_from",
    "risk_signals": "id, user_id, signal, score",
    "carts": "id, user_id, updated_at",
    "exports": "id, user_id, status, created_at",
}


def _db_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    shapes: list[_Shape] = []
    w = 1.0 / len(svc.tables)
    placeholder = "?" if svc.db_system == "mysql" else "$1"
    for table in svc.tables:
        cols = _TABLE_COLUMNS[table]
        first_col = cols.split(", ")[1]
        singular = table[:-3] + "y" if table.endswith("ies") else table.removesuffix("s")
        repo = _camel(singular.split("_")) + "Repository"
        queries = [
            ("SELECT", f"SELECT {cols} FROM {table} WHERE id = {placeholder}", 0.45, 2.0, "find_by_id", True),
            (
                "SELECT",
                f"SELECT {cols} FROM {table} WHERE {first_col} = {placeholder} ORDER BY id DESC LIMIT 50",
                0.25,
                6.0,
                f"find_by_{first_col}",
                True,
            ),
            ("INSERT", f"INSERT INTO {table} ({cols}) VALUES ({placeholder}, …)", 0.15, 4.0, "insert", False),
            (
                "UPDATE",
                f"UPDATE {table} SET {cols.split(', ')[-1]} = {placeholder} WHERE id = "
                f"{'?' if svc.db_system == 'mysql' else '$2'}",
                0.15,
                5.0,
                "update",
                False,
            ),
        ]
        for op, sql, share, median, func, returns_rows in queries:
            attrs = [
                ("db.system", svc.db_system),
                ("db.name", svc.name.replace("-", "_")),
                ("db.operation", op),
                ("db.sql.table", table),
                ("duration_ms", _DUR),
                ("code.function", f"{repo}.{func}"),
            ]
            if returns_rows:
                attrs.append(("db.rows", _ROWS))
            attrs.append(("request.id", _REQ))
            suffix = f" (rows={_ROWS})" if returns_rows else ""
            shapes.append(
                _Shape(
                    "info",
                    w * share * 0.95,
                    f"{sql} took {_DUR}ms{suffix}",
                    tuple(attrs),
                    msg="query executed",
                    trace=0.7,
                    dur_ms=median,
                )
            )
            shapes.append(
                _Shape(
                    "debug",
                    w * share * 0.02,
                    f"executing {op} on {table}: {sql}",
                    tuple(attrs[:4]) + (("code.function", f"{repo}.{func}"),),
                    msg="executing query",
                    trace=0.7,
                )
            )
            shapes.append(
                _Shape(
                    "warn",
                    w * share * 0.02,
                    f"slow query ({_DUR}ms > 500ms): {sql}",
                    tuple(attrs),
                    msg="slow query",
                    trace=0.7,
                    dur_ms=1400,
                )
            )
        base = (
            ("db.system", svc.db_system),
            ("db.name", svc.name.replace("-", "_")),
            ("db.sql.table", table),
            ("code.function", f"{repo}.update"),
            ("request.id", _REQ),
        )
        if svc.db_system == "mysql":
            errors = [
                "Deadlock found when trying to get lock; try restarting transaction",
                "Lock wait timeout exceeded; try restarting transaction",
            ]
        else:
            errors = [
                "deadlock detected",
                "canceling statement due to statement timeout",
                "could not serialize access due to concurrent update",
            ]
        for message in errors:
            shapes.append(
                _Shape(
                    "error",
                    w * 0.003,
                    f"query on {table} failed: {message}",
                    (*base, ("error.type", "database_error"), ("duration_ms", _DUR)),
                    msg="query failed",
                    trace=0.7,
                    dur_ms=800,
                )
            )
    shapes.append(
        _Shape(
            "error",
            0.002,
            "could not obtain a database connection from the pool within 30s (active=20, idle=0, waiting=14)",
            (
                ("db.system", svc.db_system),
                ("db.name", svc.name.replace("-", "_")),
                ("error.type", "pool_timeout"),
                ("pool.active", "20"),
                ("pool.waiting", "14"),
            ),
            msg="connection pool exhausted",
            trace=0.3,
        )
    )
    return shapes


def _cache_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    key = svc.cache_key
    prefix = key.split(":")[0]
    base = (
        ("db.system", "redis"),
        ("cache.key_prefix", prefix),
        ("duration_ms", _DUR),
        ("server.address", f"redis-master.{svc.namespace}.svc.cluster.local"),
        ("request.id", _REQ),
    )
    return [
        _Shape(
            "info",
            0.55,
            f"cache hit key={key} ({_DUR}ms)",
            (*base, ("cache.hit", "true")),
            msg="cache hit",
            trace=0.6,
            dur_ms=0.6,
        ),
        _Shape(
            "debug",
            0.05,
            f"cache hit key={key} ({_DUR}ms)",
            (*base, ("cache.hit", "true")),
            msg="cache hit",
            trace=0.6,
            dur_ms=0.6,
        ),
        _Shape(
            "info",
            0.3,
            f"cache miss key={key}, loading from source",
            (*base, ("cache.hit", "false")),
            msg="cache miss",
            trace=0.6,
            dur_ms=0.8,
        ),
        _Shape(
            "info",
            0.08,
            f"cache set key={key} ttl=300s ({_SIZE} bytes)",
            (*base, ("cache.ttl_s", "300"), ("cache.hit", "false")),
            msg="cache set",
            trace=0.6,
            dur_ms=0.7,
        ),
        _Shape(
            "warn",
            0.01,
            f"cache get timed out after 100ms key={key}, falling back to source",
            (*base, ("error.type", "timeout")),
            msg="cache timeout",
            trace=0.6,
            dur_ms=100,
        ),
        _Shape(
            "error",
            0.002,
            "redis: connection pool timeout (pool size 50, waited 1s)",
            (*base, ("error.type", "pool_timeout")),
            msg="cache unavailable",
            trace=0.6,
            dur_ms=1000,
        ),
    ]


def _queue_consume_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    shapes: list[_Shape] = []
    group = f"{svc.name}-consumer"
    for topic in svc.consumes:
        w = 1.0 / len(svc.consumes) / 6
        for partition in range(6):
            base = (
                ("messaging.system", "kafka"),
                ("messaging.destination", topic),
                ("messaging.kafka.partition", str(partition)),
                ("messaging.kafka.offset", _OFFSET),
                ("messaging.consumer.group", group),
            )
            where = f"{topic} partition={partition} offset={_OFFSET}"
            shapes += [
                _Shape(
                    "info",
                    w * 0.9,
                    f"consumed message from {where} in {_DUR}ms",
                    (*base, ("duration_ms", _DUR), ("messaging.message.id", _REQ)),
                    msg="message consumed",
                    trace=0.5,
                    dur_ms=12,
                ),
                _Shape(
                    "debug",
                    w * 0.02,
                    f"committed offset {_OFFSET} for {topic}[{partition}] group={group}",
                    base,
                    msg="offset committed",
                    trace=0.0,
                ),
                _Shape(
                    "warn",
                    w * 0.01,
                    f"consumer lag {_ROWS}200 messages on {topic} partition {partition}",
                    (*base, ("messaging.lag", _ROWS)),
                    msg="consumer lagging",
                    trace=0.0,
                ),
                _Shape(
                    "error",
                    w * 0.006,
                    f"failed to process message from {where}: payload missing field 'order_id'; sending to {topic}.dlq",
                    (*base, ("error.type", "invalid_payload"), ("messaging.message.id", _REQ)),
                    msg="message processing failed",
                    trace=0.5,
                ),
            ]
        shapes.append(
            _Shape(
                "warn",
                0.001,
                f"rebalance in progress for group {group}: revoked partitions [0, 1, 2] of {topic}",
                (
                    ("messaging.system", "kafka"),
                    ("messaging.destination", topic),
                    ("messaging.consumer.group", group),
                    ("code.function", "Consumer.on_revoke"),
                ),
                msg="consumer group rebalance",
                trace=0.0,
            )
        )
    return shapes


def _queue_produce_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    shapes: list[_Shape] = []
    for topic in svc.produces:
        w = 1.0 / len(svc.produces) / 6
        for partition in range(6):
            base = (
                ("messaging.system", "kafka"),
                ("messaging.destination", topic),
                ("messaging.kafka.partition", str(partition)),
                ("messaging.operation", "publish"),
                ("messaging.message.id", _REQ),
                ("duration_ms", _DUR),
            )
            shapes.append(
                _Shape(
                    "info",
                    w * 0.99,
                    f"published message to {topic} partition={partition} in {_DUR}ms ({_SIZE} bytes)",
                    (*base, ("messaging.message.body.size", _SIZE)),
                    msg="message published",
                    trace=0.6,
                    dur_ms=4,
                )
            )
            shapes.append(
                _Shape(
                    "error",
                    w * 0.006,
                    f"failed to publish to {topic}: kafka server: Request timed out (NOT_ENOUGH_REPLICAS)",
                    (*base, ("error.type", "kafka_timeout")),
                    msg="publish failed",
                    trace=0.6,
                    dur_ms=30000,
                )
            )
    return shapes


def _auth_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    ctx = (("user.id", _USER), ("client.address", _IP), ("user_agent.original", _UA), ("request.id", _REQ))
    shapes: list[_Shape] = []
    for method, share in (("password", 0.55), ("google", 0.25), ("github", 0.08), ("saml", 0.07), ("passkey", 0.05)):
        shapes.append(
            _Shape(
                "info",
                0.3 * share,
                f"login succeeded for user {_USER} via {method} from {_IP}",
                (*ctx, ("auth.method", method), ("code.function", "auth.Login")),
                msg="login succeeded",
                trace=0.7,
                event="user_logged_in",
            )
        )
    for attempt in range(1, 5):
        shapes.append(
            _Shape(
                "warn",
                0.05 / attempt,
                f"login failed for user {_USER}: invalid password (attempt {attempt} of 5)",
                (*ctx, ("auth.method", "password"), ("auth.attempt", str(attempt)), ("code.function", "auth.Login")),
                msg="login failed",
                trace=0.7,
                event="user_login_failed",
            )
        )
    shapes += [
        _Shape(
            "warn",
            0.004,
            f"account locked for user {_USER} after 5 failed attempts from {_IP}",
            (*ctx, ("auth.method", "password"), ("code.function", "auth.lockAccount")),
            msg="account locked",
            trace=0.7,
            event="user_account_locked",
        ),
        _Shape(
            "info",
            0.35,
            f"access token refreshed for user {_USER} (expires in 3600s)",
            (*ctx, ("auth.token_type", "access"), ("code.function", "auth.RefreshToken")),
            msg="token refreshed",
            trace=0.7,
        ),
        _Shape(
            "info",
            0.08,
            f"user {_USER} logged out",
            (*ctx, ("code.function", "auth.Logout")),
            msg="logged out",
            trace=0.7,
            event="user_logged_out",
        ),
        _Shape(
            "info",
            0.02,
            f"MFA challenge sent to user {_USER} via totp",
            (*ctx, ("auth.mfa", "totp"), ("code.function", "auth.Challenge")),
            msg="mfa challenge",
            trace=0.7,
        ),
        _Shape(
            "debug",
            0.05,
            f"session {_REQ} validated for user {_USER}",
            (*ctx, ("code.function", "auth.ValidateSession")),
            msg="session validated",
            trace=0.7,
        ),
        _Shape(
            "warn",
            0.03,
            "JWT validation failed: token is expired by 2m13s",
            (*ctx, ("error.type", "token_expired"), ("code.function", "auth.ValidateToken")),
            msg="jwt validation failed",
            trace=0.7,
        ),
        _Shape(
            "error",
            0.003,
            "failed to fetch JWKS from https://login.acme.io/.well-known/jwks.json: context deadline exceeded",
            (
                ("error.type", "timeout"),
                ("server.address", "login.acme.io"),
                ("code.function", "auth.refreshJWKS"),
                ("duration_ms", _DUR),
            ),
            msg="jwks refresh failed",
            trace=0.1,
            dur_ms=5000,
        ),
    ]
    return shapes


def _payments_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    shapes: list[_Shape] = []
    for provider, share in (("stripe", 0.8), ("adyen", 0.2)):
        base = (
            ("payment.provider", provider),
            ("payment.currency", "USD"),
            ("payment.amount", _AMOUNT),
            ("user.id", _USER),
            ("payment.id", _RID),
            ("request.id", _REQ),
        )
        shapes += [
            _Shape(
                "info",
                share * 0.6,
                f"charge succeeded payment_id=pay_{_RID} amount={_AMOUNT} USD provider={provider} in {_DUR}ms",
                (*base, ("duration_ms", _DUR), ("code.function", "PaymentService.charge")),
                msg="charge succeeded",
                trace=0.8,
                dur_ms=350,
                event="payment_captured",
            ),
            _Shape(
                "info",
                share * 0.03,
                f"refund processed payment_id=pay_{_RID} amount={_AMOUNT} USD",
                (*base, ("code.function", "RefundService.refund")),
                msg="refund processed",
                trace=0.8,
            ),
            _Shape(
                "info",
                share * 0.15,
                f"received {provider} webhook charge.succeeded for pay_{_RID}",
                (*base, ("webhook.event", "charge.succeeded"), ("code.function", "WebhookController.handle")),
                msg="webhook received",
                trace=0.3,
            ),
            _Shape(
                "warn",
                share * 0.02,
                f"3DS authentication required for payment pay_{_RID}",
                (*base, ("code.function", "PaymentService.charge")),
                msg="3ds required",
                trace=0.8,
            ),
            _Shape(
                "error",
                share * 0.008,
                f"{provider} API error: 502 Bad Gateway (request_id=req_{_REQ})",
                (
                    *base,
                    ("error.type", "provider_error"),
                    ("http.status_code", "502"),
                    ("code.function", "ProviderClient.post"),
                ),
                msg="provider error",
                trace=0.8,
            ),
        ]
        for code, code_share in (
            ("insufficient_funds", 0.5),
            ("card_declined", 0.3),
            ("expired_card", 0.1),
            ("incorrect_cvc", 0.1),
        ):
            shapes.append(
                _Shape(
                    "warn",
                    share * 0.05 * code_share,
                    f"card declined for user {_USER}: {code} (payment_id=pay_{_RID})",
                    (*base, ("payment.decline_code", code), ("code.function", "PaymentService.charge")),
                    msg="card declined",
                    trace=0.8,
                    event="payment_declined",
                )
            )
    return shapes


_SEARCH_QUERIES = (
    "running shoes",
    "wireless headphones",
    "coffee grinder",
    "yoga mat",
    "usb-c cable",
    "rain jacket",
    "standing desk",
    "mechanical keyboard",
    "water bottle",
    "kids backpack",
    "air fryer",
    "sunglasses",
    "phone case",
    "bluetooth speaker",
    "office chair",
    "hiking boots",
    "gift card",
    "desk lamp",
    "tent",
    "protein powder",
)


def _search_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    shapes: list[_Shape] = []
    for rank, query in enumerate(_SEARCH_QUERIES):
        w = 1.0 / (rank + 2)  # a few queries dominate, like real search traffic
        base = (
            ("search.query", query),
            ("db.system", "elasticsearch"),
            ("db.operation", "search"),
            ("search.index", "products-v7"),
            ("user.id", _USER),
            ("request.id", _REQ),
        )
        shapes.append(
            _Shape(
                "info",
                w,
                f'search query="{query}" returned {_ROWS} hits in {_DUR}ms',
                (*base, ("search.hits", _ROWS), ("duration_ms", _DUR)),
                msg="search executed",
                trace=0.7,
                dur_ms=35,
            )
        )
        shapes.append(
            _Shape(
                "warn",
                w * 0.01,
                f'search query="{query}" took {_DUR}ms (> 1000ms)',
                (*base, ("duration_ms", _DUR)),
                msg="slow search",
                trace=0.7,
                dur_ms=1600,
            )
        )
    shapes += [
        _Shape(
            "info",
            0.1,
            f'search query="{_RID}" returned 0 hits in {_DUR}ms',
            (
                ("search.query", _RID),
                ("search.hits", "0"),
                ("duration_ms", _DUR),
                ("user.id", _USER),
                ("db.system", "elasticsearch"),
            ),
            msg="search executed",
            trace=0.7,
            dur_ms=12,
        ),
        _Shape(
            "error",
            0.01,
            "elasticsearch request failed: circuit_breaking_exception: [parent] Data too "
            "large, data for [<http_request>] would be larger than limit of [4080218931/3.7gb]",
            (
                ("db.system", "elasticsearch"),
                ("search.index", "products-v7"),
                ("error.type", "circuit_breaking_exception"),
                ("http.status_code", "429"),
                ("request.id", _REQ),
            ),
            msg="search backend error",
            trace=0.7,
        ),
        _Shape(
            "debug",
            0.02,
            f"refreshing synonyms for index products-v7 ({_ROWS} entries)",
            (("search.index", "products-v7"), ("db.system", "elasticsearch"), ("code.function", "synonyms.refresh")),
            msg="synonyms refreshed",
            trace=0.0,
        ),
    ]
    return shapes


def _email_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    shapes: list[_Shape] = []
    templates = (
        ("order_confirmation", 0.4),
        ("shipping_update", 0.25),
        ("password_reset", 0.08),
        ("weekly_digest", 0.15),
        ("cart_reminder", 0.12),
    )
    for template, share in templates:
        base = (
            ("user.id", _USER),
            ("email.template", template),
            ("email.provider", "ses"),
            ("messaging.message.id", _REQ),
        )
        shapes.append(
            _Shape(
                "info",
                share * 0.7,
                f"sent email template={template} to user {_USER} via ses in {_DUR}ms",
                (*base, ("duration_ms", _DUR)),
                msg="email sent",
                trace=0.4,
                dur_ms=90,
            )
        )
        shapes.append(
            _Shape(
                "info",
                share * 0.25,
                f"push notification {template} delivered to user {_USER} (ios)",
                (*base, ("push.platform", "ios")),
                msg="push delivered",
                trace=0.4,
            )
        )
        shapes.append(
            _Shape(
                "warn",
                share * 0.02,
                f"email to user {_USER} bounced: 550 5.1.1 mailbox unavailable",
                (*base, ("email.bounce", "hard")),
                msg="email bounced",
                trace=0.4,
            )
        )
    shapes.append(
        _Shape(
            "error",
            0.006,
            "SES throttling: Maximum sending rate exceeded (14/s)",
            (
                ("email.provider", "ses"),
                ("error.type", "Throttling"),
                ("retry.attempt", "1"),
                ("messaging.message.id", _REQ),
            ),
            msg="email throttled",
            trace=0.4,
        )
    )
    return shapes


def _inference_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    base = (("ml.model", "recs-two-tower"), ("ml.model_version", "v12"), ("user.id", _USER), ("request.id", _REQ))
    return [
        _Shape(
            "info",
            0.8,
            f"generated {_ROWS} recommendations for user {_USER} model=recs-two-tower/v12 in {_DUR}ms",
            (*base, ("duration_ms", _DUR), ("ml.candidates", _ROWS)),
            msg="recommendations generated",
            trace=0.7,
            dur_ms=45,
        ),
        _Shape(
            "info",
            0.15,
            f"feature store lookup for user {_USER} returned 128 features in {_DUR}ms",
            (*base, ("duration_ms", _DUR), ("feature_store", "feast")),
            msg="features loaded",
            trace=0.7,
            dur_ms=6,
        ),
        _Shape(
            "warn",
            0.03,
            f"falling back to popular items for user {_USER}: no embedding found",
            (*base, ("ml.fallback", "popular")),
            msg="recommendation fallback",
            trace=0.7,
        ),
        _Shape(
            "error",
            0.01,
            "model server returned 503: CUDA out of memory. Tried to allocate 2.00 GiB",
            (*base, ("error.type", "model_unavailable"), ("http.status_code", "503")),
            msg="inference failed",
            trace=0.7,
        ),
    ]


_JOBS = (
    "cleanup-expired-carts",
    "expire-sessions",
    "rebuild-search-index",
    "send-cart-reminders",
    "reconcile-payments",
    "export-daily-orders",
    "refresh-exchange-rates",
)


def _jobs_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    shapes: list[_Shape] = []
    for job in _JOBS:
        w = 1.0 / len(_JOBS)
        base = (
            ("job.name", job),
            ("job.run_id", _REQ),
            ("code.function", f"jobs.{job.replace('-', '_')}.run"),
            ("job.schedule", "*/5 * * * *"),
        )
        shapes += [
            _Shape("info", w * 0.45, f"job {job} started", base, msg="job started", trace=0.1),
            _Shape(
                "info",
                w * 0.45,
                f"job {job} finished in {_DUR}ms processed={_ROWS}",
                (*base, ("duration_ms", _DUR), ("batch.size", _ROWS)),
                msg="job finished",
                trace=0.1,
                dur_ms=2500,
            ),
            _Shape(
                "warn",
                w * 0.03,
                f"job {job} took {_DUR}ms, longer than its 60s interval; skipping next run",
                (*base, ("duration_ms", _DUR)),
                msg="job overran",
                trace=0.1,
                dur_ms=75000,
            ),
            _Shape(
                "error",
                w * 0.01,
                f"job {job} failed after {_DUR}ms: lock 'jobs:{job}' held by another worker",
                (*base, ("duration_ms", _DUR), ("error.type", "LockNotAcquired")),
                msg="job failed",
                trace=0.1,
                dur_ms=200,
            ),
        ]
    return shapes


def _images_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    shapes: list[_Shape] = []
    for size, share in (("320x240", 0.3), ("640x480", 0.45), ("1280x960", 0.2), ("64x64", 0.05)):
        base = (("image.id", _RID), ("image.size", size), ("image.bytes", _SIZE), ("request.id", _REQ))
        shapes.append(
            _Shape(
                "info",
                share * 0.95,
                f"resized image {_RID}.jpg to {size} in {_DUR}ms ({_SIZE} bytes)",
                (*base, ("duration_ms", _DUR), ("image.format", "webp")),
                msg="image resized",
                trace=0.6,
                dur_ms=60,
            )
        )
    shapes += [
        _Shape(
            "warn",
            0.03,
            f"source image {_RID}.png is larger than 20MB, downscaling before resize",
            (("image.id", _RID), ("image.format", "png"), ("request.id", _REQ)),
            msg="large source image",
            trace=0.6,
        ),
        _Shape(
            "error",
            0.01,
            f"S3 GetObject failed for s3://acme-media/originals/{_RID}.jpg: RequestTimeout",
            (
                ("image.id", _RID),
                ("aws.s3.bucket", "acme-media"),
                ("error.type", "RequestTimeout"),
                ("duration_ms", _DUR),
                ("request.id", _REQ),
            ),
            msg="s3 get failed",
            trace=0.6,
            dur_ms=20000,
        ),
    ]
    return shapes


def _fraud_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    shapes: list[_Shape] = []
    for score, decision, share in (
        ("0.03", "allow", 0.4),
        ("0.11", "allow", 0.3),
        ("0.27", "allow", 0.17),
        ("0.64", "review", 0.08),
        ("0.91", "block", 0.05),
    ):
        sev = "info" if decision == "allow" else "warn"
        shapes.append(
            _Shape(
                sev,
                share,
                f"fraud score {score} for payment pay_{_RID} user {_USER} decision={decision} in {_DUR}ms",
                (
                    ("fraud.score", score),
                    ("fraud.decision", decision),
                    ("payment.id", _RID),
                    ("user.id", _USER),
                    ("duration_ms", _DUR),
                    ("ml.model", "fraud-gbm-v4"),
                ),
                msg="transaction scored",
                trace=0.8,
                dur_ms=18,
            )
        )
    return shapes


def _batch_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    return [
        _Shape(
            "info",
            0.5,
            f"accepted {_ROWS} events from {_IP} (sdk=posthog-js)",
            (
                ("batch.size", _ROWS),
                ("client.address", _IP),
                ("user_agent.original", _UA),
                ("request.id", _REQ),
                ("sdk.name", "posthog-js"),
            ),
            msg="events accepted",
            trace=0.3,
        ),
        _Shape(
            "info",
            0.4,
            f"flushed batch of {_ROWS}00 events to clickhouse in {_DUR}ms ({_SIZE} bytes)",
            (
                ("batch.size", _ROWS),
                ("duration_ms", _DUR),
                ("db.system", "clickhouse"),
                ("db.sql.table", "events"),
                ("db.operation", "INSERT"),
            ),
            msg="batch flushed",
            trace=0.0,
            dur_ms=120,
        ),
        _Shape(
            "debug",
            0.05,
            f"batch buffer at {_ROWS}% capacity",
            (("batch.size", _ROWS), ("code.function", "buffer.Append")),
            msg="buffer status",
            trace=0.0,
        ),
        _Shape(
            "warn",
            0.04,
            f"dropping event with timestamp 26h in the future from {_IP}",
            (("client.address", _IP), ("error.type", "invalid_timestamp"), ("request.id", _REQ)),
            msg="event dropped",
            trace=0.3,
        ),
        _Shape(
            "error",
            0.005,
            "clickhouse insert failed: Code: 252. DB::Exception: Too many parts (300). "
            "Merges are processing significantly slower than inserts. (TOO_MANY_PARTS)",
            (
                ("db.system", "clickhouse"),
                ("db.sql.table", "events"),
                ("error.type", "TOO_MANY_PARTS"),
                ("retry.attempt", "1"),
            ),
            msg="insert failed",
            trace=0.0,
        ),
    ]


def _inventory_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    base = (("inventory.sku", _RID), ("warehouse.id", "iad-2"), ("request.id", _REQ))
    return [
        _Shape(
            "info",
            0.6,
            f"reserved {_ROWS} units of SKU-{_RID} in warehouse iad-2",
            (*base, ("inventory.quantity", _ROWS), ("code.function", "ReservationService.reserve")),
            msg="stock reserved",
            trace=0.7,
        ),
        _Shape(
            "info",
            0.3,
            f"released reservation for SKU-{_RID} (expired)",
            (*base, ("code.function", "ReservationService.release")),
            msg="reservation released",
            trace=0.2,
        ),
        _Shape(
            "warn",
            0.08,
            f"low stock for SKU-{_RID}: {_ROWS} units left (threshold 10)",
            (*base, ("inventory.quantity", _ROWS), ("code.function", "StockMonitor.check")),
            msg="low stock",
            trace=0.2,
        ),
        _Shape(
            "error",
            0.01,
            f"cannot reserve SKU-{_RID}: requested {_ROWS}, available 0",
            (*base, ("error.type", "OutOfStock"), ("code.function", "ReservationService.reserve")),
            msg="reservation failed",
            trace=0.7,
        ),
    ]


def _orders_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    base = (("order.id", _RID), ("user.id", _USER), ("request.id", _REQ))
    shapes = [
        _Shape(
            "info",
            0.4,
            f"order {_RID} created for user {_USER} total={_AMOUNT} USD items={_ROWS}",
            (*base, ("order.total", _AMOUNT), ("order.items", _ROWS), ("code.function", "create_order")),
            msg="order created",
            trace=0.8,
            event="order_created",
        ),
        _Shape(
            "warn",
            0.02,
            f"order {_RID} payment pending for more than 15 minutes",
            (*base, ("order.status", "payment_pending"), ("code.function", "check_stale_orders")),
            msg="stale order",
            trace=0.1,
        ),
        _Shape(
            "error",
            0.005,
            f"order {_RID} cannot transition from shipped to cancelled",
            (*base, ("error.type", "InvalidTransition"), ("code.function", "transition")),
            msg="invalid order transition",
            trace=0.8,
        ),
    ]
    transitions = (("pending", "paid"), ("paid", "packed"), ("packed", "shipped"), ("shipped", "delivered"))
    for old, new in transitions:
        shapes.append(
            _Shape(
                "info",
                0.14,
                f"order {_RID} status {old} -> {new}",
                (*base, ("order.status", new), ("order.previous_status", old), ("code.function", "transition")),
                msg="order status changed",
                trace=0.5,
            )
        )
    return shapes


def _cart_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    base = (("user.id", _USER), ("request.id", _REQ), ("cart.id", _RID))
    return [
        _Shape(
            "info",
            0.55,
            f"added SKU-{_RID} x{_ROWS} to cart of user {_USER}",
            (*base, ("cart.quantity", _ROWS), ("code.function", "CartService.addItem")),
            msg="item added to cart",
            trace=0.7,
            event="cart_item_added",
        ),
        _Shape(
            "info",
            0.25,
            f"removed SKU-{_RID} from cart of user {_USER}",
            (*base, ("code.function", "CartService.removeItem")),
            msg="item removed from cart",
            trace=0.7,
        ),
        _Shape(
            "info",
            0.1,
            f"applied coupon SPRING25 to cart of user {_USER}",
            (*base, ("coupon.code", "SPRING25"), ("code.function", "CartService.applyCoupon")),
            msg="coupon applied",
            trace=0.7,
        ),
        _Shape(
            "warn",
            0.08,
            f"coupon WELCOME10 rejected for user {_USER}: already redeemed",
            (*base, ("coupon.code", "WELCOME10"), ("code.function", "CartService.applyCoupon")),
            msg="coupon rejected",
            trace=0.7,
        ),
    ]


def _shipping_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    shapes: list[_Shape] = []
    for carrier, share in (("ups", 0.45), ("fedex", 0.35), ("dhl", 0.2)):
        base = (("shipping.carrier", carrier), ("order.id", _RID), ("request.id", _REQ), ("duration_ms", _DUR))
        shapes += [
            _Shape(
                "info",
                share * 0.5,
                f"quote from {carrier}: {_AMOUNT} USD for order {_RID} in {_DUR}ms",
                (*base, ("shipping.cost", _AMOUNT), ("code.function", "QuoteService.quote")),
                msg="carrier quote",
                trace=0.8,
                dur_ms=240,
            ),
            _Shape(
                "info",
                share * 0.4,
                f"label created with {carrier} for order {_RID} tracking 1Z{_RID}",
                (*base, ("code.function", "LabelService.create")),
                msg="label created",
                trace=0.8,
                dur_ms=400,
            ),
            _Shape(
                "warn",
                share * 0.05,
                f"{carrier} rate API slow ({_DUR}ms), using cached rates",
                (*base, ("code.function", "QuoteService.quote")),
                msg="carrier slow",
                trace=0.8,
                dur_ms=2500,
            ),
        ]
    return shapes


# Stack traces by language. {pkg}, {Svc} and {svc} are filled per service; «variables» per record.
_PY_EXCEPTIONS: tuple[tuple[str, str, str], ...] = (
    (
        "KeyError",
        "'shipping_address'",
        """Traceback (most recent call last):
  File "/usr/local/lib/python3.12/site-packages/starlette/middleware/errors.py", line 165, in __call__
    await self.app(scope, receive, _send)
  File "/usr/local/lib/python3.12/site-packages/fastapi/routing.py", line 301, in app
    raw_response = await run_endpoint_function(dependant=dependant, values=values)
  File "/app/{pkg}/api/routes.py", line 88, in handle
    result = await service.process(payload)
  File "/app/{pkg}/services/core.py", line 142, in process
    address = payload["shipping_address"]
KeyError: 'shipping_address'""",
    ),
    (
        "sqlalchemy.exc.OperationalError",
        "connection to server failed: timeout expired",
        """Traceback (most recent call last):
  File "/app/{pkg}/repositories/base.py", line 57, in fetch_one
    row = await session.execute(stmt)
  File "/usr/local/lib/python3.12/site-packages/sqlalchemy/ext/asyncio/session.py", line 461, in execute
    result = await greenlet_spawn(self.sync_session.execute, statement)
  File "/usr/local/lib/python3.12/site-packages/sqlalchemy/engine/base.py", line 2355, in \
_handle_dbapi_exception
    raise sqlalchemy_exception.with_traceback(exc_info[2]) from e
sqlalchemy.exc.OperationalError: (psycopg.OperationalError) connection to server at "{svc}-db.internal" \
(10.0.4.12), port 5432 failed: timeout expired""",
    ),
    (
        "httpx.ReadTimeout",
        "timed out",
        """Traceback (most recent call last):
  File "/app/{pkg}/clients/upstream.py", line 44, in get_json
    response = await self._client.get(url, timeout=5.0)
  File "/usr/local/lib/python3.12/site-packages/httpx/_client.py", line 1814, in get
    return await self.request("GET", url, params=params, headers=headers)
  File "/usr/local/lib/python3.12/site-packages/httpx/_transports/default.py", line 118, in \
map_httpcore_exceptions
    raise mapped_exc(message) from exc
httpx.ReadTimeout: timed out""",
    ),
    (
        "ValueError",
        "invalid literal for int() with base 10: 'undefined'",
        """Traceback (most recent call last):
  File "/app/{pkg}/api/routes.py", line 61, in list_items
    limit = int(request.query_params.get("limit", 20))
ValueError: invalid literal for int() with base 10: 'undefined'""",
    ),
    (
        "AttributeError",
        "'NoneType' object has no attribute 'items'",
        """Traceback (most recent call last):
  File "/app/{pkg}/workers/consumer.py", line 97, in handle_message
    for key, value in message.headers.items():
AttributeError: 'NoneType' object has no attribute 'items'""",
    ),
)
_JAVA_EXCEPTIONS: tuple[tuple[str, str, str], ...] = (
    (
        "java.lang.NullPointerException",
        'Cannot invoke "com.acme.{pkg}.model.Cart.getItems()" because "cart" is null',
        """java.lang.NullPointerException: Cannot invoke "com.acme.{pkg}.model.Cart.getItems()" because \
"cart" is null
\tat com.acme.{pkg}.service.{Svc}Service.process({Svc}Service.java:214)
\tat com.acme.{pkg}.api.{Svc}Controller.handle({Svc}Controller.java:87)
\tat java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103)
\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885)
\tat org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:166)
\tat org.apache.tomcat.util.threads.ThreadPoolExecutor$Worker.run(ThreadPoolExecutor.java:659)
\tat java.base/java.lang.Thread.run(Thread.java:1583)""",
    ),
    (
        "org.springframework.dao.DataAccessResourceFailureException",
        "Unable to acquire JDBC Connection",
        """org.springframework.dao.DataAccessResourceFailureException: Unable to acquire JDBC Connection
\tat org.springframework.orm.jpa.vendor.HibernateJpaDialect.convertHibernateAccessException(\
HibernateJpaDialect.java:277)
\tat org.springframework.orm.jpa.JpaTransactionManager.doBegin(JpaTransactionManager.java:466)
\tat com.acme.{pkg}.repository.{Svc}Repository.save({Svc}Repository.java:52)
\tat com.acme.{pkg}.service.{Svc}Service.process({Svc}Service.java:131)
Caused by: java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, \
request timed out after 30000ms.
\tat com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:696)
\tat com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:181)
\t... 42 more""",
    ),
    (
        "java.net.SocketTimeoutException",
        "Read timed out",
        """java.net.SocketTimeoutException: Read timed out
\tat java.base/sun.nio.ch.NioSocketImpl.timedRead(NioSocketImpl.java:288)
\tat java.base/java.net.Socket$SocketInputStream.read(Socket.java:1099)
\tat okhttp3.internal.http1.Http1ExchangeCodec.readResponseHeaders(Http1ExchangeCodec.kt:180)
\tat com.acme.{pkg}.client.UpstreamClient.post(UpstreamClient.java:73)
\tat com.acme.{pkg}.service.{Svc}Service.process({Svc}Service.java:98)""",
    ),
    (
        "java.lang.IllegalStateException",
        "Order is already in state SHIPPED",
        """java.lang.IllegalStateException: Order is already in state SHIPPED
\tat com.acme.{pkg}.domain.OrderStateMachine.transition(OrderStateMachine.java:61)
\tat com.acme.{pkg}.service.{Svc}Service.process({Svc}Service.java:157)
\tat com.acme.{pkg}.messaging.EventListener.onMessage(EventListener.java:44)""",
    ),
)
_GO_EXCEPTIONS: tuple[tuple[str, str, str], ...] = (
    (
        "runtime.Error",
        "invalid memory address or nil pointer dereference",
        """panic recovered: runtime error: invalid memory address or nil pointer dereference
goroutine «rows»81 [running]:
github.com/acme/{svc}/internal/handlers.(*Handler).ServeHTTP(0xc0001a2000, {0x1c4e2a0, 0xc000512380}, \
0xc0004f6b00)
\t/src/internal/handlers/handler.go:142 +0x1d4
net/http.HandlerFunc.ServeHTTP(0xc000132a80?, {0x1c4e2a0?, 0xc000512380?}, 0x0?)
\t/usr/local/go/src/net/http/server.go:2220 +0x29
github.com/acme/{svc}/internal/middleware.Recover.func1({0x1c4e2a0, 0xc000512380}, 0xc0004f6b00)
\t/src/internal/middleware/recover.go:28 +0x8b""",
    ),
    (
        "context.DeadlineExceeded",
        "context deadline exceeded",
        """request failed: rpc error: code = DeadlineExceeded desc = context deadline exceeded
github.com/acme/{svc}/internal/store.(*Store).Get
\t/src/internal/store/store.go:88
github.com/acme/{svc}/internal/handlers.(*Handler).get
\t/src/internal/handlers/get.go:35""",
    ),
)
_NODE_EXCEPTIONS: tuple[tuple[str, str, str], ...] = (
    (
        "TypeError",
        "Cannot read properties of undefined (reading 'id')",
        """TypeError: Cannot read properties of undefined (reading 'id')
    at {Svc}Service.handle (/app/dist/services/{svc}.js:142:31)
    at async {Svc}Controller.post (/app/dist/controllers/{svc}.js:58:20)
    at async /app/node_modules/@fastify/express/index.js:118:7""",
    ),
    (
        "Error",
        "connect ECONNREFUSED 10.0.3.17:6379",
        """Error: connect ECONNREFUSED 10.0.3.17:6379
    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1607:16)
    at TCPConnectWrap.callbackTrampoline (node:internal/async_hooks:130:17)""",
    ),
    (
        "AbortError",
        "The operation was aborted due to timeout",
        """AbortError: The operation was aborted due to timeout
    at new DOMException (node:internal/per_context/domexception:53:5)
    at Timeout.<anonymous> (node:internal/abort_controller:141:14)
    at listOnTimeout (node:internal/timers:594:17)
    at process.processTimers (node:internal/timers:529:7)""",
    ),
)
_EXCEPTIONS = {
    "python": _PY_EXCEPTIONS,
    "java": _JAVA_EXCEPTIONS,
    "go": _GO_EXCEPTIONS,
    "node": _NODE_EXCEPTIONS,
}
_FATALS: dict[str, tuple[tuple[str, str], ...]] = {
    "python": (
        ("WorkerTimeout", "[CRITICAL] WORKER TIMEOUT (pid:«rows»7), worker exiting"),
        ("OperationalError", "could not connect to the database after 10 attempts, shutting down"),
    ),
    "java": (
        (
            "java.lang.OutOfMemoryError",
            "java.lang.OutOfMemoryError: Java heap space\n"
            "\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)\n"
            "\tat com.fasterxml.jackson.core.util.ByteArrayBuilder.toByteArray(ByteArrayBuilder.java:125)\n"
            "\tat com.acme.{pkg}.messaging.EventListener.onMessage(EventListener.java:51)",
        ),
        (
            "org.springframework.context.ApplicationContextException",
            "Application run failed: Failed to "
            "start bean 'kafkaListenerContainer'; broker kafka-0.kafka:9092 not available",
        ),
    ),
    "go": (
        (
            "runtime.Error",
            "panic: runtime error: index out of range [3] with length 3\n\n"
            "goroutine 1 [running]:\nmain.loadConfig({0xc00001e0f0, 0x3, 0x3})\n\t/src/cmd/{svc}/main.go:74 "
            "+0x2a5\nmain.main()\n\t/src/cmd/{svc}/main.go:31 +0x65\nexit status 2",
        ),
        ("net.OpError", "failed to start server: listen tcp :8080: bind: address already in use"),
    ),
    "node": (
        ("RangeError", "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory"),
        ("Error", "uncaughtException: Error: Redis connection to redis-master:6379 failed, exiting"),
    ),
}
_FLAGS = ("new-checkout-flow", "search-v2-ranking", "free-shipping-banner", "one-click-reorder")


def _generic_shapes(svc: _Service, rng: random.Random) -> list[_Shape]:
    """Records every service writes: tracing, health, runtime, slowness, exceptions and fatal errors."""
    lang = svc.language
    pkg = svc.name.replace("-", "_") if lang != "java" else svc.name.replace("-", "")
    camel = _camel(svc.name.split("-"))
    func = {
        "python": f"{pkg}.services.core.process",
        "java": f"{camel}Service.process",
        "go": f"{pkg}.(*Service).Process",
        "node": f"{camel}Service.handle",
    }[lang]
    ctx = (("code.function", func), ("request.id", _REQ), ("user.id", _USER))
    shapes = [
        _Shape("trace", 0.004, f"entering {func}", (*ctx, ("code.lineno", "131")), msg="enter", trace=0.9),
        _Shape(
            "trace",
            0.004,
            f"exiting {func} after {_DUR}ms",
            (*ctx, ("duration_ms", _DUR)),
            msg="exit",
            trace=0.9,
            dur_ms=8,
        ),
        _Shape(
            "debug",
            0.01,
            f"acquired connection from pool in {_DUR}ms (active=7 idle=3)",
            (*ctx, ("pool.active", "7"), ("duration_ms", _DUR)),
            msg="connection acquired",
            trace=0.6,
            dur_ms=0.5,
        ),
        _Shape(
            "info",
            0.02,
            f"metrics exported ({_ROWS}0 series)",
            (("code.function", "metrics.export"), ("exporter", "otlp"), ("batch.size", _ROWS)),
            msg="metrics exported",
            trace=0.0,
        ),
        _Shape(
            "info",
            0.0005,
            f"{svc.name} started on :8080 in 3.{_ROWS}s",
            (("code.function", "main"), ("server.port", "8080"), ("process.runtime.name", lang)),
            msg="service started",
            trace=0.0,
        ),
        _Shape(
            "info",
            0.003,
            "configuration reloaded from /etc/config/app.yaml (3 keys changed)",
            (("code.function", "config.reload"), ("config.source", "/etc/config/app.yaml")),
            msg="config reloaded",
            trace=0.0,
        ),
        _Shape(
            "warn",
            0.01,
            f"request took {_DUR}ms, above the 1000ms threshold",
            (*ctx, ("duration_ms", _DUR)),
            msg="slow request",
            trace=0.8,
            dur_ms=1900,
        ),
        _Shape(
            "warn",
            0.003,
            "memory usage at 87% of container limit (1.74GiB / 2GiB)",
            (
                ("code.function", "runtime.monitor"),
                ("process.memory.usage", "1868562432"),
                ("container.memory.limit", "2147483648"),
            ),
            msg="high memory usage",
            trace=0.0,
        ),
        _Shape(
            "warn",
            0.002,
            f"deprecated API version v1 called by {_IP}; use v2",
            (*ctx, ("client.address", _IP), ("user_agent.original", _UA)),
            msg="deprecated api",
            trace=0.5,
        ),
        _Shape(
            "warn",
            0.003,
            f"rate limit at 80% for user {_USER} (400/500 requests per minute)",
            (*ctx, ("ratelimit.limit", "500")),
            msg="rate limit approaching",
            trace=0.5,
        ),
    ]
    for flag in _FLAGS:
        shapes.append(
            _Shape(
                "debug",
                0.004,
                f"feature flag {flag} evaluated to true for user {_USER}",
                (*ctx, ("feature_flag.key", flag), ("feature_flag.variant", "true")),
                msg="feature flag evaluated",
                trace=0.6,
            )
        )
    if lang == "java":
        shapes.append(
            _Shape(
                "info",
                0.01,
                f"GC pause (G1 Evacuation Pause) {_DUR}ms",
                (("code.function", "jvm.gc"), ("jvm.gc.name", "G1 Young Generation"), ("duration_ms", _DUR)),
                msg="gc pause",
                trace=0.0,
                dur_ms=12,
            )
        )
    exceptions = _EXCEPTIONS[lang]
    for etype, message, stack in exceptions:
        fill = stack.replace("{pkg}", pkg).replace("{Svc}", camel).replace("{svc}", svc.name)
        message = message.replace("{pkg}", pkg)
        header = {
            "python": "Exception in request handler",
            "java": "Servlet.service() for servlet [dispatcherServlet] threw exception",
            "go": "request failed",
            "node": "Unhandled error in request handler",
        }[lang]
        shapes.append(
            _Shape(
                "error",
                0.02 / len(exceptions),
                header,
                (*ctx, ("exception.type", etype), ("exception.message", message)),
                msg=header,
                stack=fill,
                trace=0.8,
            )
        )
    for etype, text in _FATALS[lang]:
        fill = text.replace("{pkg}", pkg).replace("{svc}", svc.name)
        first, _, rest = fill.partition("\n")
        shapes.append(
            _Shape(
                "fatal",
                0.0005,
                first,
                (
                    ("code.function", "main"),
                    ("exception.type", etype),
                    ("process.exit_code", "1"),
                    ("process.runtime.name", lang),
                ),
                stack=rest or None,
                trace=0.0,
            )
        )
    return shapes


_MIN_ATTRIBUTES = 5


def _with_source_location(svc: _Service, kind: str, shape: _Shape, rng: random.Random) -> _Shape:
    """Add what the language's OpenTelemetry log bridge attaches by itself, up to a handful of attributes.

    Java appenders always record the thread; records with few attributes of their own get the source
    location (code.*) and process id that the Python handler and the configured Go/Node loggers add."""
    attrs = dict(shape.attrs)
    if svc.language == "java" and "thread.name" not in attrs:
        attrs["thread.name"] = f"http-nio-8080-exec-{rng.randint(1, 40)}"
    module = svc.name.replace("-", "_")
    path = {
        "python": f"/app/{module}/{kind}.py",
        "java": f"com/acme/{module}/{_camel(kind.split('_'))}.java",
        "go": f"/src/internal/{kind}/{kind}.go",
        "node": f"/app/dist/{kind}.js",
    }[svc.language]
    extra = (
        ("code.function", f"{kind}.handle"),
        ("code.filepath", path),
        ("code.lineno", str(rng.randint(20, 400))),
        ("process.pid", "1"),
    )
    for key, value in extra:
        if len(attrs) >= _MIN_ATTRIBUTES:
            break
        attrs.setdefault(key, value)
    return replace(shape, attrs=tuple(attrs.items()))


_KIND_BUILDERS: dict[str, Callable[[_Service, random.Random], list[_Shape]]] = {
    "http": _http_shapes,
    "client": _client_shapes,
    "db": _db_shapes,
    "cache": _cache_shapes,
    "queue_consume": _queue_consume_shapes,
    "queue_produce": _queue_produce_shapes,
    "auth": _auth_shapes,
    "payments": _payments_shapes,
    "search": _search_shapes,
    "email": _email_shapes,
    "inference": _inference_shapes,
    "jobs": _jobs_shapes,
    "images": _images_shapes,
    "fraud": _fraud_shapes,
    "batch": _batch_shapes,
    "inventory": _inventory_shapes,
    "orders": _orders_shapes,
    "cart": _cart_shapes,
    "shipping": _shipping_shapes,
    "generic": _generic_shapes,
}


def _namespace_of(service: str) -> str:
    return next(s.namespace for s in _SERVICES if s.name == service)


# Structured bodies use short field names for the common attributes, like real JSON loggers do.
_FIELD_NAMES = {
    "http.method": "method",
    "http.route": "route",
    "http.status_code": "status",
    "user.id": "user_id",
    "request.id": "request_id",
    "client.address": "remote_addr",
}


# Attributes the logging bridge attaches (source location, thread), not fields the code logged.
_LOGGER_METADATA = frozenset({"code.function", "code.filepath", "code.lineno", "thread.name", "process.pid"})


def _render_body(svc: _Service, shape: _Shape) -> str:
    """The body template of a shape in the service's logging style."""
    if svc.style == "text":
        return shape.text + ("\n" + shape.stack if shape.stack else "")
    msg = shape.msg or shape.text
    fields = [(name, "", value) for name, value in shape.fields]
    fields += [(_FIELD_NAMES.get(k, k.replace(".", "_")), k, v) for k, v in shape.attrs if k not in _LOGGER_METADATA]
    numeric = _INT_KEYS | _FLOAT_KEYS | _BOOL_KEYS
    if svc.style == "json":
        parts = [
            '{"level":',
            json.dumps(shape.severity),
            ',"time":',
            _TSMS,
            ',"msg":',
            json.dumps(msg, ensure_ascii=False),
        ]
        for name, key, value in fields:
            raw = key in numeric
            parts += [",", json.dumps(name), ":", value if raw else json.dumps(value, ensure_ascii=False)]
        if shape.stack:
            parts += [',"stack":', json.dumps(shape.stack, ensure_ascii=False)]
        parts.append("}")
        return "".join(parts)

    # logfmt, as Go's slog TextHandler writes it (time omitted: the record carries it)
    def quote(value: str) -> str:
        return json.dumps(value, ensure_ascii=False) if re.search(r'[\s"=]', value) or not value else value

    items = [f"level={shape.severity.upper()}", f"msg={quote(msg)}"]
    items += [f"{name}={quote(value)}" for name, _key, value in fields]
    if shape.stack:
        items.append(f"stack={quote(shape.stack)}")
    return " ".join(items)


# ---------------------------------------------------------------------------------------------------------
# The compiled world: pools, shape arrays and lookup tables, built once per process.
# ---------------------------------------------------------------------------------------------------------


def _slots(weights: Sequence[float], first: int = 0, slots: int = _SLOTS) -> array.array[int]:
    """A lookup table of `slots` entries where value first + i fills a share weights[i]/sum(weights) of them.

    Shares are rounded by largest remainder, so an item with a weight below 1/slots may get no entry."""
    total = sum(weights)
    exact = [w / total * slots for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: slots - sum(counts)]:
        counts[i] += 1
    table = array.array("i")
    for index, count in enumerate(counts):
        table.extend(array.array("i", [first + index]) * count)
    return table


def _int32_array(values: array.array[int]) -> pa.Array:
    return pa.Array.from_buffers(pa.int32(), len(values), [None, pa.py_buffer(values.tobytes())])


def _lognormal_quantiles(median: float, sigma: float, count: int = 4096) -> list[float]:
    normal = NormalDist()
    return [median * math.exp(sigma * normal.inv_cdf((i + 0.5) / count)) for i in range(count)]


# (user agent, share of requests)
_USER_AGENTS: tuple[tuple[str, float], ...] = (
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
        "Safari/537.36",
        8,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
        "Safari/605.1.15",
        4,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Mobile/15E148 Safari/604.1",
        7,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
        "Mobile Safari/537.36",
        5,
    ),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", 1),
    ("AcmeShop/5.12.0 (iOS 17.5; iPhone15,2)", 3),
    ("AcmeShop/5.11.3 (Android 14; SM-S918B)", 2),
    ("okhttp/4.12.0", 1),
    ("python-httpx/0.27.0", 0.5),
    ("curl/8.7.1", 0.5),
)


class _World:
    """Everything that does not depend on (n, days, seed, end), as Arrow arrays ready for `take`."""

    def __init__(self) -> None:
        rng = random.Random("logpond-demo-world-v1")
        self.fixed: list[str] = []
        self._fixed_index: dict[str, int] = {}
        self.keys: list[str] = []
        self._key_index: dict[str, int] = {}
        self._build_resources(rng)
        self._build_shapes(rng)
        self._build_pools(rng)

    # -- string interning: templates become code lists -------------------------------------------------

    def _fixed_code(self, text: str) -> int:
        code = self._fixed_index.get(text)
        if code is None:
            code = self._fixed_index[text] = len(self.fixed)
            self.fixed.append(text)
        return code

    def _template_codes(self, template: str) -> list[int]:
        """Fixed segments as pool indices (>= 0), variables as -(variable index + 1)."""
        codes: list[int] = []
        for position, piece in enumerate(_VAR_PATTERN.split(template)):
            if position % 2:
                codes.append(-(_VAR_CODE[piece] + 1))
            elif piece:
                codes.append(self._fixed_code(piece))
        return codes

    def _key_code(self, key: str) -> int:
        code = self._key_index.get(key)
        if code is None:
            code = self._key_index[key] = len(self.keys)
            self.keys.append(key)
        return code

    # -- resources -------------------------------------------------------------------------------------

    def _build_resources(self, rng: random.Random) -> None:
        alphabet = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for generated names
        us_nodes = [f"ip-10-0-{rng.randint(16, 63)}-{rng.randint(2, 250)}.ec2.internal" for _ in range(12)]
        eu_nodes = [f"ip-10-1-{rng.randint(16, 63)}-{rng.randint(2, 250)}.eu-west-1.compute.internal" for _ in range(4)]
        self.resources: list[dict[str, str]] = []
        pod_tables = array.array("i")
        self.scopes: list[str] = []
        for svc in _SERVICES:
            version = f"{rng.randint(1, 4)}.{rng.randint(0, 30)}.{rng.randint(0, 12)}"
            replica_set = "".join(rng.choices(alphabet, k=10))
            pods: list[tuple[dict[str, str], float]] = []
            for index in range(svc.pods):
                in_eu = svc.eu and index >= svc.pods - max(1, svc.pods // 3)
                pods.append(
                    (
                        self._resource(
                            svc,
                            version,
                            replica_set,
                            rng,
                            alphabet,
                            rng.choice(eu_nodes if in_eu else us_nodes),
                            "eu-west-1" if in_eu else "us-east-1",
                            "prod",
                        ),
                        rng.uniform(0.8, 1.2),
                    )
                )
            if svc.staging:
                major, minor, _patch = version.split(".")
                staging_version = f"{major}.{int(minor) + 1}.0-rc.{rng.randint(1, 5)}"
                pods.append(
                    (
                        self._resource(
                            svc,
                            staging_version,
                            "".join(rng.choices(alphabet, k=10)),
                            rng,
                            alphabet,
                            rng.choice(us_nodes),
                            "us-east-1",
                            "staging",
                        ),
                        0.03 * svc.pods,
                    )
                )
            first = len(self.resources)
            self.resources.extend(resource for resource, _ in pods)
            pod_tables.extend(_slots([w for _, w in pods], first))
            scope_name = {
                "python": f"{svc.name.replace('-', '_')}.app",
                "java": f"com.acme.{svc.name.replace('-', '')}",
                "go": f"github.com/acme/{svc.name}",
                "node": f"@acme/{svc.name}",
            }[svc.language]
            self.scopes.append(f"{scope_name}@{version}")
        self.pod_tables = _int32_array(pod_tables)
        self.resource_service = [SERVICE_NAMES.index(r["service.name"]) for r in self.resources]
        # Every resource has the same keys in the same order, so a block's resource maps share one
        # precomputed keys array and fixed-stride offsets; only the values are gathered per row.
        self.resource_keys = tuple(self.resources[0])
        if any(tuple(r) != self.resource_keys for r in self.resources):
            raise ValueError("all resources must have the same keys in the same order")
        width = len(self.resource_keys)
        values = [v for resource in self.resources for v in resource.values()]
        self.resource_values = pa.ListArray.from_arrays(
            pa.array(range(0, len(values) + 1, width), pa.int32()), pa.array(values, pa.string())
        )
        self.resource_offsets = pa.array(range(0, (_BLOCK + 1) * width, width), pa.int32())
        self.resource_key_block = pa.array(self.resource_keys, pa.string()).take(
            pa.array([i % width for i in range(_BLOCK * width)], pa.int32())
        )
        self.service_names = pa.array(SERVICE_NAMES, pa.string())
        self.scope_array = pa.array(self.scopes, pa.string())

    def resource_maps(self, resource: pa.Array) -> pa.MapArray:
        """The resource attribute maps of the given resource indices (much faster than MapArray.take)."""
        count = len(resource)
        width = len(self.resource_keys)
        return pa.MapArray.from_arrays(
            self.resource_offsets.slice(0, count + 1),
            self.resource_key_block.slice(0, count * width),
            self.resource_values.take(resource).flatten(),
        )

    @staticmethod
    def _resource(
        svc: _Service,
        version: str,
        replica_set: str,
        rng: random.Random,
        alphabet: str,
        node: str,
        region: str,
        environment: str,
    ) -> dict[str, str]:
        namespace = svc.namespace if environment == "prod" else f"{svc.namespace}-staging"
        return {
            "service.name": svc.name,
            "service.version": version,
            "deployment.environment": environment,
            "k8s.namespace.name": namespace,
            "k8s.deployment.name": svc.name,
            "k8s.pod.name": f"{svc.name}-{replica_set}-{''.join(rng.choices(alphabet, k=5))}",
            "host.name": node,
            "cloud.provider": "aws",
            "cloud.region": region,
            "telemetry.sdk.language": svc.language if svc.language != "node" else "nodejs",
        }

    # -- shapes and their lookup tables ----------------------------------------------------------------

    def _build_shapes(self, rng: random.Random) -> None:
        body_offsets, body_codes = [0], []
        attr_offsets, attr_keys, attr_values = [0], [], []
        severity_numbers: list[int] = []
        severity_texts: list[str] = []
        trace_thresholds: list[int] = []
        dur_medians: list[int] = []
        events: list[str] = []
        shape_tables = array.array("i")
        for svc in _SERVICES:
            shapes: list[_Shape] = []
            kind_shares: list[float] = []
            for kind, share in svc.kinds.items():
                built = [_with_source_location(svc, kind, shape, rng) for shape in _KIND_BUILDERS[kind](svc, rng)]
                total = sum(s.weight for s in built)
                shapes.extend(built)
                kind_shares.extend(share * s.weight / total for s in built)
            first = len(severity_numbers)
            for shape in shapes:
                body_codes.extend(self._template_codes(_render_body(svc, shape)))
                body_offsets.append(len(body_codes))
                for key, value in dict(shape.attrs).items():
                    codes = self._template_codes(value)
                    if len(codes) != 1:
                        raise ValueError(f"attribute {key}={value!r} must be one literal or one variable")
                    attr_keys.append(self._key_code(key))
                    attr_values.append(codes[0])
                attr_offsets.append(len(attr_keys))
                severity_numbers.append(_SEVERITY_NUMBERS[shape.severity])
                severity_texts.append(shape.severity)
                trace_thresholds.append(round(shape.trace * _TRACED_SHARE * 65536))
                dur_medians.append(max(1, round(shape.dur_ms * 1000)))
                events.append(shape.event)
            # A record's shape is drawn by severity first (so every service hits its severity mix exactly,
            # and a burst can shift it), then by the shape's share of its kind within that severity.
            for severity_mix in ({**_BASE_SEVERITY, **svc.severity}, _BURST_SEVERITY):
                by_severity = dict.fromkeys(_SEVERITY_ORDER, 0.0)
                for s, w in zip(shapes, kind_shares, strict=True):
                    by_severity[s.severity] += w
                weights = [
                    severity_mix[s.severity] * w / by_severity[s.severity]
                    for s, w in zip(shapes, kind_shares, strict=True)
                ]
                shape_tables.extend(_slots(weights, first))
        self.shape_tables = _int32_array(shape_tables)
        self.body_lists = pa.ListArray.from_arrays(pa.array(body_offsets, pa.int32()), pa.array(body_codes, pa.int64()))
        self.attr_key_lists = pa.ListArray.from_arrays(
            pa.array(attr_offsets, pa.int32()), pa.array([self.keys[k] for k in attr_keys], pa.string())
        )
        self.attr_value_lists = pa.ListArray.from_arrays(
            pa.array(attr_offsets, pa.int32()), pa.array(attr_values, pa.int64())
        )
        self.severity_numbers = pa.array(severity_numbers, pa.uint8())
        self.severity_texts = pa.array(severity_texts, pa.string())
        self.trace_thresholds = pa.array(trace_thresholds, pa.int32())
        self.dur_medians = pa.array(dur_medians, pa.int64())
        self.events = pa.array(events, pa.string())
        self.fixed_array = pa.array(self.fixed, pa.string())
        # Service tables: 0 is normal traffic; 1 + s is traffic while service s has an error burst.
        weights = [s.weight for s in _SERVICES]
        self.total_weight = sum(weights)
        service_tables = _slots(weights)
        for hit in range(len(_SERVICES)):
            boosted = [w * (_BURST_VOLUME if i == hit else 1.0) for i, w in enumerate(weights)]
            service_tables.extend(_slots(boosted))
        self.service_tables = _int32_array(service_tables)
        self.service_weights = weights

    # -- value pools -----------------------------------------------------------------------------------

    def _build_pools(self, rng: random.Random) -> None:
        # Durations: a log-normal with a 2% slow tail, in thousandths of the shape's median.
        unit = _lognormal_quantiles(1000, 0.8)
        rng.shuffle(unit)
        for i in range(0, len(unit), 50):
            unit[i] *= 8
        self.dur_units = pa.array([round(u) for u in unit], pa.int64())
        self.rows_pool = pa.array([str(min(5000, int(x))) for x in _lognormal_quantiles(6, 1.3)], pa.string())
        self.size_pool = pa.array([str(int(x)) for x in _lognormal_quantiles(1800, 1.1)], pa.string())
        # Retail prices end in .99, .49, …; never in 0, so the text survives a round trip through a double.
        cents = (99, 49, 95, 89, 79, 29, 19, 45, 25, 75)
        self.amount_pool = pa.array(
            [f"{int(x)}.{cents[i % len(cents)]:02d}" for i, x in enumerate(_lognormal_quantiles(45, 0.9))], pa.string()
        )
        # Ingestion delay (observed - timestamp): mostly tens of ms, a tail of seconds (batching, retries).
        self.delay_us = pa.array(
            [min(15_000_000, max(800, round(x))) for x in _lognormal_quantiles(40_000, 1.3)], pa.int64()
        )
        ips: list[str] = []
        for i in range(4096):
            if i % 4 == 0:  # in-cluster callers
                ips.append(f"10.0.{rng.randint(0, 63)}.{rng.randint(2, 254)}")
            else:
                first = rng.choice((23, 31, 45, 51, 62, 66, 73, 81, 92, 98, 104, 142, 176, 185, 197, 203))
                ips.append(f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}")
        self.ip_pool = pa.array(ips, pa.string())
        agents = _slots([share for _, share in _USER_AGENTS], slots=32)
        self.ua_pool = pa.array([_USER_AGENTS[i][0] for i in agents], pa.string())
        # UUIDv7 text pieces: the low 16 bits of the ms timestamp, "7" + 12 random bits, variant + 14 bits.
        self.hex4 = pa.array([f"{i:04x}" for i in range(65536)], pa.string())
        self.uuid_version = pa.array([f"7{i:03x}" for i in range(4096)], pa.string())
        self.uuid_variant = pa.array([f"{0x8000 | i:04x}" for i in range(16384)], pa.string())
        self.arange = pa.array(range(_BLOCK), pa.int64())


@functools.cache
def _world() -> _World:
    return _World()


# ---------------------------------------------------------------------------------------------------------
# The plan for one call: how many records fall into each time bucket, and when the error bursts are.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    n: int
    seed: int
    bucket_starts: list[int]  # len buckets + 1; the last is the window end
    cumulative: list[int]  # len buckets + 1: records before each bucket
    bucket_tables: list[int]  # service table per bucket: 0 normal, 1 + s during a burst of service s


def _make_plan(n: int, days: float, seed: int, end: datetime | None) -> _Plan:
    if n < 0:
        raise ValueError("n must be >= 0")
    if not days > 0:
        raise ValueError("days must be > 0")
    end = end or datetime.now(UTC)
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    end_us = (end - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    window_us = round(days * 86_400_000_000)
    start_us = end_us - window_us
    buckets = max(1, round(days * 1440))  # about one bucket per minute
    bucket_starts = [start_us + i * window_us // buckets for i in range(buckets + 1)]
    rng = random.Random(f"logpond-demo-plan:{seed}")
    world = _world()
    tables = [0] * buckets
    for _ in range(max(2, round(2 * days))):
        service = SERVICE_NAMES.index(rng.choice(_BURST_CANDIDATES))
        length = max(1, round(rng.uniform(8, 25) * buckets / (days * 1440)))
        first = rng.randrange(buckets)
        for b in range(first, min(buckets, first + length)):
            tables[b] = 1 + service
    weights: list[float] = []
    for b in range(buckets):
        middle_us = (bucket_starts[b] + bucket_starts[b + 1]) // 2
        hour = middle_us / 3_600_000_000 % 24
        weekday = int(middle_us // 86_400_000_000 + 3) % 7  # 1970-01-01 was a Thursday; 5, 6 = weekend
        # Peak around 16:00 UTC (European evening, American afternoon), trough around 04:00 at a third of it.
        diurnal = 0.35 + 0.65 * (1 - math.cos(2 * math.pi * (hour - 4) / 24)) / 2
        weekly = 0.75 if weekday >= 5 else 1.0
        noise = max(0.5, 1 + 0.08 * rng.gauss(0, 1))
        burst = 1.0
        if tables[b]:
            burst = (world.total_weight + (_BURST_VOLUME - 1) * world.service_weights[tables[b] - 1]) / (
                world.total_weight
            )
        weights.append(diurnal * weekly * noise * burst * (bucket_starts[b + 1] - bucket_starts[b]))
    total = sum(weights)
    cumulative = [0]
    running = 0.0
    for w in weights:
        running += w
        cumulative.append(round(n * running / total))
    cumulative[-1] = n
    return _Plan(n, seed, bucket_starts, cumulative, tables)


# ---------------------------------------------------------------------------------------------------------
# Generating one block of rows.
# ---------------------------------------------------------------------------------------------------------


class _RandomBytes:
    """One `randbytes` call per block, handed out as typed Arrow arrays without copying."""

    def __init__(self, rng: random.Random, size: int) -> None:
        self._data = rng.randbytes(size)
        self._buffer = pa.py_buffer(self._data)
        self._position = 0

    def _advance(self, size: int) -> int:
        start = self._position
        self._position += size
        if self._position > len(self._data):
            raise RuntimeError("random byte budget exceeded")
        return start

    def fixed_binary(self, count: int, width: int) -> pa.Array:
        """`count` random values of `width` bytes."""
        start = self._advance(count * width)
        buffer = self._buffer.slice(start, count * width)
        return pa.Array.from_buffers(pa.binary(width), count, [None, buffer])

    def ints(self, type_: pa.DataType, count: int) -> pa.Array:
        size = count * type_.bit_width // 8
        start = self._advance(size)
        return pa.Array.from_buffers(type_, count, [None, self._buffer.slice(start, size)])

    def hex_strings(self, count: int, width: int) -> pa.Array:
        """`count` random lower-case hex strings of `width` (even) characters."""
        start = self._advance(count * width // 2)
        text = pa.py_buffer(binascii.hexlify(self._data[start : self._position]))
        return pa.Array.from_buffers(pa.binary(width), count, [None, text]).cast(pa.string())


# Random bytes a block consumes: per row 14 uint16 and one uint32 draws, a span id and the uuid's last 6
# bytes; per request group a trace id, a request id and two uint32 draws for the user.
_BYTES_PER_ROW = 14 * 2 + 4 + 8 + 6
_BYTES_PER_GROUP = 16 + 8 + 2 * 4


@dataclass(frozen=True)
class _Block:
    table: pa.Table
    resources: pa.Array  # index into the world's resources, per row (OTLP grouping)


def _scaled(values: pa.Array, scale: int) -> pa.Array:
    """Uniform integers in [0, scale) from uniform uint32 values."""
    return pc.shift_right(pc.multiply(values.cast(pa.uint64()), scale), 32)


def _generate_block(plan: _Plan, block: int, team_id: int) -> _Block:
    world = _world()
    first = block * _BLOCK
    last = min(plan.n, first + _BLOCK)
    m = last - first
    groups = (last - 1) // _REQUEST_GROUP - first // _REQUEST_GROUP + 1
    rand = _RandomBytes(
        random.Random(f"logpond-demo:{plan.seed}:{block}"), m * _BYTES_PER_ROW + groups * _BYTES_PER_GROUP
    )

    # Which bucket each row falls in: a list array whose lists are the buckets' rows in this block.
    b0 = bisect.bisect_right(plan.cumulative, first) - 1
    b1 = bisect.bisect_left(plan.cumulative, last)
    bucket_ids = range(b0, b1)
    offsets = [max(plan.cumulative[b], first) - first for b in bucket_ids] + [m]
    rows_by_bucket = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.nulls(m))
    local_bucket = pc.list_parent_indices(rows_by_bucket)
    bucket_start = pa.array([plan.bucket_starts[b] for b in bucket_ids], pa.int64()).take(local_bucket)
    bucket_width = pa.array([plan.bucket_starts[b + 1] - plan.bucket_starts[b] for b in bucket_ids], pa.int64()).take(
        local_bucket
    )
    bucket_first = pa.array([plan.cumulative[b] for b in bucket_ids], pa.int64()).take(local_bucket)
    bucket_count = pa.array([max(1, plan.cumulative[b + 1] - plan.cumulative[b]) for b in bucket_ids], pa.int64()).take(
        local_bucket
    )
    bucket_table = pa.array([plan.bucket_tables[b] for b in bucket_ids], pa.int32()).take(local_bucket)

    # Row k of a bucket with c rows lands at a jittered position inside the k-th c-th of the bucket, so
    # timestamps are sorted across blocks without any sort.
    global_row = pc.add(world.arange.slice(0, m), first)
    rank = pc.subtract(global_row, bucket_first)
    jitter = pc.shift_right(pc.multiply(rand.ints(pa.uint16(), m).cast(pa.int64()), bucket_width), 16)
    ts_us = pc.add(bucket_start, pc.divide(pc.add(pc.multiply(rank, bucket_width), jitter), bucket_count))
    observed_us = pc.add(ts_us, world.delay_us.take(pc.shift_right(rand.ints(pa.uint16(), m), 4)))

    # Service, pod and shape through the lookup tables.
    service = world.service_tables.take(
        pc.add(pc.multiply(bucket_table, _SLOTS), rand.ints(pa.uint16(), m).cast(pa.int32()))
    )
    hot = pc.equal(pc.subtract(bucket_table, 1), service)
    resource = world.pod_tables.take(pc.add(pc.multiply(service, _SLOTS), rand.ints(pa.uint16(), m).cast(pa.int32())))
    shape_table = pc.add(pc.multiply(service, 2), hot.cast(pa.int32()))
    shape = world.shape_tables.take(
        pc.add(pc.multiply(shape_table.cast(pa.int64()), _SLOTS), rand.ints(pa.uint16(), m).cast(pa.int64()))
    )

    # Trace context for a share of records; request groups of consecutive records share a trace and a
    # request id, as the lines of one request do.
    has_trace = pc.less(rand.ints(pa.uint16(), m).cast(pa.int32()), world.trace_thresholds.take(shape))
    group = pc.subtract(pc.divide(global_row, _REQUEST_GROUP), first // _REQUEST_GROUP)
    trace_ids = rand.fixed_binary(groups, 16).take(group).cast(pa.binary())
    span_ids = rand.fixed_binary(m, 8).cast(pa.binary())
    empty = pa.scalar(b"", pa.binary())
    trace_id = pc.if_else(has_trace, trace_ids, empty)
    span_id = pc.if_else(has_trace, span_ids, empty)
    trace_flags = has_trace.cast(pa.uint8())

    # Per-record variables, in _VARIABLES order.
    # One user per request group; the minimum of two uniform draws makes low ids the heavy users.
    user = pc.add(
        pc.min_element_wise(
            _scaled(rand.ints(pa.uint32(), groups), _USER_COUNT), _scaled(rand.ints(pa.uint32(), groups), _USER_COUNT)
        ),
        1,
    )
    dur = pc.divide(
        pc.multiply(world.dur_units.take(pc.shift_right(rand.ints(pa.uint16(), m), 4)), world.dur_medians.take(shape)),
        1_000_000,
    )
    ts_ms = pc.divide(ts_us, 1000)
    variables = [
        user.cast(pa.string()).take(group),
        rand.hex_strings(groups, 16).take(group),
        dur.cast(pa.string()),
        pc.add(_scaled(rand.ints(pa.uint32(), m), 9_000_000), 1_000_000).cast(pa.string()),
        pc.add(pc.divide(global_row, 3), 40_000_000).cast(pa.string()),
        world.rows_pool.take(pc.shift_right(rand.ints(pa.uint16(), m), 4)),
        world.ip_pool.take(pc.shift_right(rand.ints(pa.uint16(), m), 4)),
        world.size_pool.take(pc.shift_right(rand.ints(pa.uint16(), m), 4)),
        ts_ms.cast(pa.string()),
        world.amount_pool.take(pc.shift_right(rand.ints(pa.uint16(), m), 4)),
        world.ua_pool.take(pc.shift_right(rand.ints(pa.uint16(), m), 11)),
    ]
    # One source for every string a record can contain: the fixed pool, then each variable's m values.
    source = pa.chunked_array([world.fixed_array, *variables]).combine_chunks()
    fixed_count = len(world.fixed_array)

    def resolve(codes: pa.Array, rows: pa.Array) -> pa.Array:
        """Source positions for template codes: fixed strings as they are, variables at their row."""
        variable_at = pc.add(pc.add(pc.multiply(pc.subtract(pc.negate(codes), 1), m), rows), fixed_count)
        return pc.if_else(pc.less(codes, 0), variable_at, codes)

    body_lists = world.body_lists.take(shape)
    body_codes = body_lists.flatten()
    segments = source.take(resolve(body_codes, pc.list_parent_indices(body_lists)))
    body = pc.binary_join(pa.ListArray.from_arrays(body_lists.offsets, segments), "")

    key_lists = world.attr_key_lists.take(shape)
    value_codes = world.attr_value_lists.take(shape).flatten()
    attributes = pa.MapArray.from_arrays(
        key_lists.offsets,
        key_lists.flatten(),
        source.take(resolve(value_codes, pc.list_parent_indices(key_lists))),
    )

    # UUIDv7: 48-bit ms timestamp, version 7, 12 random bits, variant 10, 62 random bits (RFC 9562).
    ms_high = pc.shift_right(ts_ms, 16)
    distinct_high = pc.unique(ms_high)
    high_text = pa.array([f"{v:08x}" for v in distinct_high.to_pylist()], pa.string())
    uuid = pc.binary_join_element_wise(
        high_text.take(pc.index_in(ms_high, value_set=distinct_high)),
        world.hex4.take(pc.bit_wise_and(ts_ms, 0xFFFF)),
        world.uuid_version.take(pc.shift_right(rand.ints(pa.uint16(), m), 4)),
        world.uuid_variant.take(pc.shift_right(rand.ints(pa.uint16(), m), 2)),
        rand.hex_strings(m, 12),
        "-",
    )

    table = pa.Table.from_arrays(
        [
            pa.repeat(pa.scalar(team_id, pa.int32()), m),
            uuid,
            trace_id,
            span_id,
            trace_flags,
            ts_us.cast(pa.timestamp("us", tz="UTC")),
            observed_us.cast(pa.timestamp("us", tz="UTC")),
            body,
            world.severity_texts.take(shape),
            world.severity_numbers.take(shape),
            world.service_names.take(service),
            world.resource_maps(resource),
            world.scope_array.take(service),
            world.events.take(shape),
            attributes,
        ],
        schema=LOG_ARROW_SCHEMA,
    )
    return _Block(table, resource)


_T = TypeVar("_T")


# Arrow kernels release the GIL, so blocks built on a few threads overlap almost perfectly; blocks are
# independent (own seed, own rows), so the output does not depend on how many run at once.
_WORKERS = max(1, min(4, os.cpu_count() or 1))


def _blocks(
    n: int, days: float, seed: int, end: datetime | None, team_id: int, finish: Callable[[_Block], _T]
) -> Iterator[_T]:
    """The blocks of a run in order, each passed through `finish` on the worker thread that built it."""
    plan = _make_plan(n, days, seed, end)
    count = (n + _BLOCK - 1) // _BLOCK

    def build(block: int) -> _T:
        return finish(_generate_block(plan, block, team_id))

    if _WORKERS == 1 or count < 2:
        yield from map(build, range(count))
        return
    _world()  # build it once, before threads race for it
    with ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="logpond-demo") as pool:
        # A bounded window of blocks in flight keeps memory flat however large n is.
        in_flight: deque[Future[_T]] = deque()
        next_block = 0
        while next_block < count or in_flight:
            while next_block < count and len(in_flight) < _WORKERS + 1:
                in_flight.append(pool.submit(build, next_block))
                next_block += 1
            yield in_flight.popleft().result()


# ---------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------


def generate_log_tables(
    n: int,
    *,
    team_id: int,
    days: float = 1.0,
    seed: int = 0,
    end: datetime | None = None,
    batch_rows: int = 100_000,
) -> Iterator[pa.Table]:
    """Yield `n` realistic log rows as tables of at most `batch_rows` rows with exactly LOG_ARROW_SCHEMA.

    Rows are sorted by timestamp across the whole output and spread over the `days` before `end` (default:
    now) with a diurnal curve and error bursts. The content depends only on (n, days, seed, end). Each
    table is a single chunk; with `batch_rows` = 65,536 (the internal block size) no rows are copied.
    """
    if batch_rows <= 0:
        raise ValueError("batch_rows must be > 0")
    pending: list[pa.Table] = []
    pending_rows = 0
    for table in _blocks(n, days, seed, end, team_id, finish=_table_of):
        while table.num_rows:
            take = min(batch_rows - pending_rows, table.num_rows)
            pending.append(table.slice(0, take))
            pending_rows += take
            table = table.slice(take)
            if pending_rows == batch_rows:
                yield _joined(pending)
                pending, pending_rows = [], 0
    if pending:
        yield _joined(pending)


def _table_of(block: _Block) -> pa.Table:
    return block.table


def _joined(tables: list[pa.Table]) -> pa.Table:
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables).combine_chunks()


def generate_otlp_requests(
    n: int,
    *,
    days: float = 1.0,
    seed: int = 0,
    end: datetime | None = None,
    batch_records: int = 1000,
) -> Iterator[bytes]:
    """Yield serialized OTLP `ExportLogsServiceRequest`s carrying `n` records, `batch_records` per request.

    The records are the ones `generate_log_tables` yields for the same arguments (the uuid is left to the
    receiver), grouped per request into one ResourceLogs per pod, each with one ScopeLogs. Severity number
    and text are both set; attribute values are typed: integers as int_value, decimals as double_value,
    flags as bool_value, the rest as string_value. Every request but the last has `batch_records` records.
    """
    if batch_records <= 0:
        raise ValueError("batch_records must be > 0")
    world = _world()
    encoder = _OtlpEncoder(world)
    pending: list[tuple[_BlockRows, int, int]] = []
    pending_rows = 0
    for rows in _blocks(n, days, seed, end, team_id=0, finish=_BlockRows):
        start = 0
        while start < rows.count:
            stop = min(rows.count, start + batch_records - pending_rows)
            pending.append((rows, start, stop))
            pending_rows += stop - start
            start = stop
            if pending_rows == batch_records:
                yield encoder.encode(pending)
                pending, pending_rows = [], 0
    if pending:
        yield encoder.encode(pending)


class _BlockRows:
    """A block as OTLP wire format: each record's LogRecord field, encoded entirely with Arrow kernels."""

    def __init__(self, block: _Block) -> None:
        table = block.table.combine_chunks()
        self.count = table.num_rows
        self.resource: list[int] = block.resources.to_pylist()
        binary = pa.binary()
        empty = pa.scalar(b"", binary)
        # LogRecord fields 1 (time, fixed64), 2 + 3 (severity number and text), 5 (body AnyValue).
        time_ns = pc.multiply(table["timestamp"].chunk(0).cast(pa.int64()), 1000)
        observed_ns = pc.multiply(table["observed_timestamp"].chunk(0).cast(pa.int64()), 1000)
        body = _length_prefixed(b"\x2a", _length_prefixed(b"\x0a", table["body"].chunk(0).cast(binary)))
        head = pc.binary_join_element_wise(
            pa.scalar(b"\x09"),
            _fixed_width(time_ns, 8),
            _severity_fields().take(table["severity_number"].chunk(0)),
            body,
            b"",
        )
        # Field 6: the attributes, typed as the OTel SDK would send them.
        attributes = table["attributes"].chunk(0)
        attribute_fields = _attribute_fields(attributes.keys, attributes.items)
        attribute_lists = pa.ListArray.from_arrays(attributes.offsets, attribute_fields)
        # Fields 8 (flags, fixed32), 9 + 10 (trace and span ids) only on traced records, as protobuf leaves
        # out zero/empty fields; then 11 (observed time) and 12 (event name, when set).
        trace_id, span_id = table["trace_id"].chunk(0), table["span_id"].chunk(0)
        trace = pc.binary_join_element_wise(
            pa.scalar(b"\x45"),
            _fixed_width(table["trace_flags"].chunk(0).cast(pa.uint32()), 4),
            pa.scalar(b"\x4a\x10"),
            trace_id,
            pa.scalar(b"\x52\x08"),
            span_id,
            b"",
        )
        event = table["event_name"].chunk(0).cast(binary)
        tail = pc.binary_join_element_wise(
            pc.if_else(pc.greater(pc.binary_length(trace_id), 0), trace, empty),
            pa.scalar(b"\x59"),
            _fixed_width(observed_ns, 8),
            pc.if_else(pc.greater(pc.binary_length(event), 0), _length_prefixed(b"\x62", event), empty),
            b"",
        )
        record = pc.binary_join_element_wise(head, pc.binary_join(attribute_lists, b""), tail, b"")
        # ScopeLogs field 2: one length-delimited LogRecord each.
        self.records: list[bytes] = _length_prefixed(b"\x12", record).to_pylist()


def _attribute_fields(keys: pa.Array, values: pa.Array) -> pa.Array:
    """LogRecord field 6 (KeyValue) per attribute entry, with int/double/bool/string AnyValues by key."""
    binary = pa.binary()
    # AnyValue: string_value (field 1) for every entry, then the typed ones swapped in.
    any_value = _length_prefixed(b"\x0a", values.cast(binary))
    typed_encoders = ((_INT_KEYS, _int_values), (_FLOAT_KEYS, _double_values), (_BOOL_KEYS, _bool_values))
    for type_keys, encode in typed_encoders:
        typed = pc.is_in(keys, value_set=pa.array(sorted(type_keys), pa.string()))
        if pc.any(typed).as_py():
            any_value = pc.replace_with_mask(any_value, typed, encode(values.filter(typed)))
    # KeyValue: key (field 1) and value (field 2); the key and the value's field key come from a table.
    prefixes = _key_prefixes()
    key_value = pc.binary_join_element_wise(
        prefixes.encoded.take(pc.index_in(keys, value_set=prefixes.keys)), _length_prefixed(b"", any_value), b""
    )
    return _length_prefixed(b"\x32", key_value)


def _int_values(values: pa.Array) -> pa.Array:
    # AnyValue.int_value is field 3, a varint.
    return pc.binary_join_element_wise(pa.scalar(b"\x18"), _varints(values.cast(pa.int64())), b"")


def _double_values(values: pa.Array) -> pa.Array:
    # AnyValue.double_value is field 4, a fixed64.
    return pc.binary_join_element_wise(pa.scalar(b"\x21"), _fixed_width(values.cast(pa.float64()), 8), b"")


def _bool_values(values: pa.Array) -> pa.Array:
    # AnyValue.bool_value is field 2, a varint.
    return pc.if_else(pc.equal(values, "true"), pa.scalar(b"\x10\x01"), pa.scalar(b"\x10\x00"))


@dataclass(frozen=True)
class _KeyPrefixes:
    keys: pa.Array  # every attribute key of the world
    encoded: pa.Array  # KeyValue.key (field 1) followed by the key of KeyValue.value (field 2)


@functools.cache
def _key_prefixes() -> _KeyPrefixes:
    keys = _world().keys
    encoded = [_field(b"\x0a", key.encode()) + b"\x12" for key in keys]
    return _KeyPrefixes(pa.array(keys, pa.string()), pa.array(encoded, pa.binary()))


def _varints(values: pa.Array) -> pa.Array:
    """Protobuf varints of non-negative int64 values, vectorised up to 2**35 (larger ones in Python)."""
    if len(values) and (pc.max(values).as_py() >= 1 << 35 or pc.min(values).as_py() < 0):
        return pa.array([_varint(v) for v in values.to_pylist()], pa.binary())
    pieces = []
    for k in range(5):
        group = pc.bit_wise_and(pc.shift_right(values, 7 * k), 0x7F)
        continued = pc.greater_equal(values, 1 << (7 * (k + 1)))
        piece = _byte_array().take(pc.bit_wise_or(group, pc.multiply(continued.cast(pa.int64()), 0x80)))
        if k:
            piece = pc.if_else(pc.greater_equal(values, 1 << (7 * k)), piece, pa.scalar(b"", pa.binary()))
        pieces.append(piece)
    return pc.binary_join_element_wise(*pieces, b"")


@functools.cache
def _byte_array() -> pa.Array:
    return pa.array([bytes((i,)) for i in range(256)], pa.binary())


def _fixed_width(values: pa.Array, width: int) -> pa.Array:
    """Little-endian bytes of fixed-width integers, as protobuf fixed32/fixed64 fields want them."""
    return pa.Array.from_buffers(pa.binary(width), len(values), [None, values.buffers()[1]], offset=values.offset).cast(
        pa.binary()
    )


def _varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer (or a negative int64, as 10 bytes)."""
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Length prefixes are nearly always short: look them up instead of computing them.
_SHORT_VARINTS: tuple[bytes, ...] = tuple(_varint(i) for i in range(1 << 14))


@functools.cache
def _varint_array() -> pa.Array:
    return pa.array(_SHORT_VARINTS, pa.binary())


@functools.cache
def _severity_fields() -> pa.Array:
    """LogRecord fields 2 and 3, indexed by severity number."""
    by_number = {n: b"\x10" + _varint(n) + _field(b"\x1a", t.upper().encode()) for t, n in _SEVERITY_NUMBERS.items()}
    return pa.array([by_number.get(n, b"") for n in range(25)], pa.binary())


def _length_prefixed(key: bytes, values: pa.Array) -> pa.Array:
    """Length-delimited fields for a binary array, vectorised (values under 16 KiB; longer ones in Python)."""
    lengths = pc.binary_length(values)
    if len(values) and pc.max(lengths).as_py() >= 1 << 14:
        return pa.array([_field(key, v) for v in values.to_pylist()], pa.binary())
    return pc.binary_join_element_wise(pa.scalar(key), _varint_array().take(lengths), values, b"")


def _field(key: bytes, payload: bytes) -> bytes:
    """A length-delimited protobuf field; `key` is its encoded (field number << 3 | 2)."""
    size = len(payload)
    return key + (_SHORT_VARINTS[size] if size < 16384 else _varint(size)) + payload


class _OtlpEncoder:
    """Writes ExportLogsServiceRequest wire format directly.

    Building upb message objects costs ~30 µs a record from Python. Instead each block's LogRecords are
    encoded at once with Arrow kernels (_BlockRows), and a request only concatenates them under cached
    Resource and InstrumentationScope encodings; the protobuf classes parse the result to the same
    messages. Field keys below are (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited,
    5 fixed32)."""

    def __init__(self, world: _World) -> None:
        self._world = world
        # ResourceLogs field 1 (Resource) per pod, and ScopeLogs field 1 (InstrumentationScope) per service.
        self._resources = [
            _field(
                b"\x0a",
                Resource(
                    attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in r.items()]
                ).SerializeToString(),
            )
            for r in world.resources
        ]
        self._scopes: list[bytes] = []
        for scope in world.scopes:
            name, _, version = scope.rpartition("@")
            encoded = _field(b"\x0a", name.encode()) + _field(b"\x12", version.encode())
            self._scopes.append(_field(b"\x0a", encoded))

    def encode(self, segments: list[tuple[_BlockRows, int, int]]) -> bytes:
        by_resource: dict[int, list[bytes]] = {}
        for rows, start, stop in segments:
            resource_of = rows.resource
            records = rows.records
            for row in range(start, stop):
                by_resource.setdefault(resource_of[row], []).append(records[row])
        resource_logs = []
        for resource, records in by_resource.items():
            scope = self._scopes[self._world.resource_service[resource]]
            scope_logs = _field(b"\x12", scope + b"".join(records))
            # ExportLogsServiceRequest field 1: ResourceLogs (resource, then its one ScopeLogs).
            resource_logs.append(_field(b"\x0a", self._resources[resource] + scope_logs))
        return b"".join(resource_logs)
