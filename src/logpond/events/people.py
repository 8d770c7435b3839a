"""PostHog's persons list: filters, newest first, limit/offset pages, and each person's distinct ids.

A person's ``name`` is what PostHog shows: the first of ``email``, ``name``, ``username`` (in their
spellings) that is set, else a distinct id that does not look like a generated UUID, else its id.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from logpond.events.listing import ch_time, properties_json
from logpond.hogql.filters import FiltersError, property_condition
from logpond.logs.dates import iso
from logpond.query import ast
from logpond.store.base import QueryResult

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000
_NAME_KEYS = ("email", "Email", "$email", "name", "Name", "username", "Username", "UserName")
_UUID_LIKE = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.IGNORECASE)
_MAX_DISTINCT_IDS = 1000


class PeopleParamError(Exception):
    def __init__(self, detail: str, attr: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.attr = attr


@dataclass(frozen=True)
class PeopleRequest:
    limit: int
    offset: int
    conditions: tuple[ast.Expr, ...]


def _distinct_id_subquery(distinct_id: str) -> ast.Select:
    return ast.Select(
        select=(ast.Field("person_id"),),
        from_=ast.JoinExpr(ast.TableRef("person_distinct_ids")),
        where=ast.Compare("=", ast.Field("distinct_id"), ast.Constant(distinct_id)),
    )


def parse_people_request(
    params: Mapping[str, str], *, parse_expr: Callable[[str], ast.Expr], person_id: str | None = None
) -> PeopleRequest:
    try:
        limit = int(params.get("limit") or DEFAULT_LIMIT)
        offset = int(params.get("offset") or 0)
    except ValueError:
        raise PeopleParamError("limit and offset must be integers.", "limit") from None
    if not 0 <= offset <= MAX_OFFSET:
        raise PeopleParamError(f"offset must be between 0 and {MAX_OFFSET}.", "offset")
    conditions: list[ast.Expr] = []
    if person_id is not None:
        conditions.append(ast.Compare("=", ast.Field("id"), ast.Constant(uuid.UUID(person_id))))
    distinct_id = params.get("distinct_id")
    if distinct_id:
        conditions.append(ast.Compare("in", ast.Field("id"), _distinct_id_subquery(distinct_id)))
    email = params.get("email")
    if email:
        conditions.append(ast.Compare("=", ast.Chain(("properties", "email")), ast.Constant(email)))
    search = params.get("search")
    if search:
        options: list[ast.Expr] = [
            ast.Compare("ilike", ast.Chain(("properties", "email")), ast.Constant(f"%{_escape_like(search)}%")),
            ast.Compare("in", ast.Field("id"), _distinct_id_subquery(search)),
        ]
        with contextlib.suppress(ValueError):
            options.append(ast.Compare("=", ast.Field("id"), ast.Constant(uuid.UUID(search))))
        conditions.append(ast.Or(tuple(options)))
    raw = params.get("properties")
    if raw:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise PeopleParamError("Properties are unparsable!", "properties") from None
        leaves = [doc] if isinstance(doc, dict) else doc
        if not isinstance(leaves, list):
            raise PeopleParamError("properties must be a JSON array of property filters.", "properties")
        for i, leaf in enumerate(leaves):
            if isinstance(leaf, dict) and leaf.get("type", "person") == "person":
                # on the persons list, a person filter reads the person's own properties
                leaf = {**leaf, "type": "event"}
            try:
                conditions.append(property_condition(leaf, f"properties__{i}", parse_expr))
            except FiltersError as exc:
                raise PeopleParamError(str(exc), exc.attr) from None
    return PeopleRequest(limit=max(1, min(limit, MAX_LIMIT)), offset=offset, conditions=tuple(conditions))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def people_page(run: Callable[[ast.Select], QueryResult], request: PeopleRequest) -> tuple[list[dict[str, Any]], bool]:
    """One page of persons (newest first) and whether another page follows."""
    node = ast.Select(
        select=tuple(ast.Field(f) for f in ("id", "created_at", "last_seen_at", "properties", "is_identified")),
        from_=ast.JoinExpr(ast.TableRef("persons")),
        where=ast.and_(*request.conditions),
        order_by=(ast.OrderExpr(ast.Field("created_at"), "DESC"), ast.OrderExpr(ast.Field("id"), "DESC")),
        limit=request.limit + 1,
        offset=request.offset or None,
    )
    rows = run(node).rows
    more = len(rows) > request.limit
    rows = rows[: request.limit]
    if not rows:
        return [], more
    ids = [row[0] for row in rows]
    mapping = run(
        ast.Select(
            select=(ast.Field("person_id"), ast.Field("distinct_id")),
            from_=ast.JoinExpr(ast.TableRef("person_distinct_ids")),
            where=ast.Compare("in", ast.Field("person_id"), ast.Constant([uuid.UUID(i) for i in ids])),
            order_by=(ast.OrderExpr(ast.Field("distinct_id")),),
            limit=_MAX_DISTINCT_IDS * len(ids),
        )
    ).rows
    distinct_ids: dict[str, list[str]] = {}
    for person_id, distinct_id in mapping:
        distinct_ids.setdefault(person_id, []).append(distinct_id)
    return [_person(row, distinct_ids.get(row[0], [])) for row in rows], more


def _person(row: list[Any], distinct_ids: list[str]) -> dict[str, Any]:
    person_id, created_at, last_seen_at, properties, identified = row
    props = properties_json(properties)
    # ids people chose (emails, user ids) before generated ones, as PostHog lists them
    ordered = sorted(distinct_ids, key=lambda d: bool(_UUID_LIKE.match(d)))[:_MAX_DISTINCT_IDS]
    return {
        "type": "person",
        "id": person_id,
        "uuid": person_id,
        "name": _name(props, ordered, person_id),
        "distinct_ids": ordered,
        "properties": props,
        "created_at": iso(ch_time(created_at)),
        "last_seen_at": iso(ch_time(last_seen_at)) if last_seen_at else None,
        "is_identified": bool(identified),
        "matched_recordings": [],
        "value_at_data_point": None,
    }


def _name(props: dict[str, Any], distinct_ids: list[str], person_id: str) -> str:
    for key in _NAME_KEYS:
        value = props.get(key)
        if value not in (None, ""):
            return str(value)
    return distinct_ids[0] if distinct_ids else person_id
