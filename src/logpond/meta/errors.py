"""Errors the metadata layer raises on bad input; the API layer maps them to 400 / 404 responses."""

from __future__ import annotations


class NotFoundError(LookupError):
    """A referenced organisation, project, user or key does not exist."""


class ConflictError(ValueError):
    """The write would duplicate something that must be unique (an email, a membership)."""
