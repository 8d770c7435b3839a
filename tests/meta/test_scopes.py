"""Scope grammar and the has_scope rule (no database)."""

from __future__ import annotations

import pytest

from logpond.meta import InvalidScopeError, has_scope
from logpond.meta.scopes import validate_scopes


@pytest.mark.parametrize(
    ("held", "required", "granted"),
    [
        (["*"], "query:read", True),
        (["*"], "project:write", True),
        (["query:read"], "query:read", True),
        (["query:write"], "query:read", True),
        (["query:read"], "query:write", False),
        (["project:read"], "query:read", False),
        (["project:write"], "query:read", False),
        (["logs:read", "project:read"], "project:read", True),
        (["logs:write"], "logs:read", True),
        ([], "query:read", False),
        (["query:read"], "query_x:read", False),
        (["feature_flag:write"], "feature_flag:read", True),
    ],
)
def test_has_scope_matrix(held: list[str], required: str, granted: bool) -> None:
    """``*`` grants all, a scope grants itself, ``X:write`` grants ``X:read`` and nothing else is implied."""
    assert has_scope(held, required) is granted


@pytest.mark.parametrize("required", ["*", "query", "query:admin", "Query:read", ""])
def test_has_scope_rejects_malformed_requirements(required: str) -> None:
    """Asking for something that is not ``<object>:read|write`` is a programming error."""
    with pytest.raises(ValueError):
        has_scope(["*"], required)


def test_validate_scopes_keeps_valid_scopes_as_given() -> None:
    """Valid scopes are returned unchanged, in order."""
    assert validate_scopes(["query:read", "*", "feature_flag:write"]) == (
        "query:read",
        "*",
        "feature_flag:write",
    )


@pytest.mark.parametrize(
    "bad",
    ["query", "query:admin", "Query:read", "query:READ", "query:read ", "q-uery:read", ":read", "**", "", 7],
)
def test_validate_scopes_names_the_bad_scope(bad: object) -> None:
    """A malformed scope raises InvalidScopeError (a ValueError) that names it."""
    with pytest.raises(InvalidScopeError) as raised:
        validate_scopes(["query:read", bad])

    assert raised.value.scope == bad
    assert repr(bad) in str(raised.value)
    assert isinstance(raised.value, ValueError)
