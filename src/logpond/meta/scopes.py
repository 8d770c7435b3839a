"""Personal API key scopes, with PostHog's grammar and meaning.

A scope is ``"*"`` (everything) or ``"<object>:<read|write>"``; holding ``X:write`` also grants ``X:read``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

WILDCARD = "*"
_SCOPE = re.compile(r"(?P<object>[a-z_]+):(?P<access>read|write)")


class InvalidScopeError(ValueError):
    """A scope string that is neither ``*`` nor ``<object>:read|write``; ``scope`` is the offending value."""

    def __init__(self, scope: object) -> None:
        super().__init__(f"Invalid scope {scope!r}: expected '*' or '<object>:read' / '<object>:write'.")
        self.scope = scope


def is_valid_scope(scope: object) -> bool:
    return isinstance(scope, str) and (scope == WILDCARD or _SCOPE.fullmatch(scope) is not None)


def validate_scopes(scopes: Iterable[object]) -> tuple[str, ...]:
    """Return the scopes as a tuple, or raise ``InvalidScopeError`` naming the first bad one.

    Order and duplicates are kept as given: we store what the user asked for, not a rewrite of it.
    """
    checked: list[str] = []
    for scope in scopes:
        if not isinstance(scope, str) or not is_valid_scope(scope):
            raise InvalidScopeError(scope)
        checked.append(scope)
    return tuple(checked)


def has_scope(scopes: Sequence[str], required: str) -> bool:
    """Whether a key holding ``scopes`` may do something that needs ``required`` (``<object>:read|write``)."""
    wanted = _SCOPE.fullmatch(required)
    if wanted is None:
        # A malformed requirement is a bug in the route, not a property of the caller's key.
        raise ValueError(f"required scope must be '<object>:read' or '<object>:write', got {required!r}")
    if WILDCARD in scopes or required in scopes:
        return True
    return wanted["access"] == "read" and f"{wanted['object']}:write" in scopes
