"""Severity normalisation for incoming log records (PostHog logs spec §10).

Every stored row carries one of six canonical levels in ``severity_text`` (``trace``, ``debug``, ``info``,
``warn``, ``error``, ``fatal``) and a matching OTLP ``severity_number`` (1–24).

Precedence, highest first (what :func:`resolve_severity` implements):

1. **A level in a JSON object body.** When the body text starts with ``{`` and parses as a JSON object
   whose key ``level``, ``severity``, ``log.level`` or ``config.log_level`` (also nested as
   ``{"log": {"level": ..}}`` and ``{"config": {"log_level": ..}}``, checked in that order) holds a known
   level name, that level wins, over the record's ``severity_text`` *and* over its ``severity_number``.
   The body is what the application itself wrote; shippers that tail stdout or container logs commonly
   stamp every line with a default number (INFO, 9), which would otherwise hide the application's own
   errors. The number stored is then the record's own ``severity_number`` if it falls in the same level
   band (e.g. ERROR2 = 18 stays 18), else the canonical number of the body's level, so text and number
   never disagree. A kvlist body is JSON-encoded before this check, so a structured body with a ``level``
   key counts too. Only string values count (``"level": 30`` from pino is not a level name).
2. **``severity_number`` in 1–24.** The text is derived from the number's band (1–4 trace, 5–8 debug,
   9–12 info, 13–16 warn, 17–20 error, 21–24 fatal). Numbers outside 1–24 (0 = unspecified, or values no
   OTLP version defines) are treated as absent.
3. **``severity_text``**, normalised case-insensitively through the alias table below; anything unknown or
   empty becomes ``info``. The number is the canonical one for that level (trace 1, debug 5, info 9,
   warn 13, error 17, fatal 21).

PostHog's capture applies the body override before mapping the number, so there the number wins over the
body; we deliberately let the body win (reason above).
"""

from __future__ import annotations

from typing import Final

import orjson

# canonical level -> the OTLP severity number that starts its band
SEVERITY_NUMBERS: Final[dict[str, int]] = {
    "trace": 1,
    "debug": 5,
    "info": 9,
    "warn": 13,
    "error": 17,
    "fatal": 21,
}

# lower-case spelling -> canonical level
_ALIASES_LOWER: Final[dict[str, str]] = {
    "trace": "trace",
    "debug": "debug",
    "dbug": "debug",
    "info": "info",
    "information": "info",
    "informational": "info",
    "notice": "info",
    "warn": "warn",
    "warning": "warn",
    "error": "error",
    "err": "error",
    "eror": "error",
    "fatal": "fatal",
    "critical": "fatal",
    "crit": "fatal",
    "alert": "fatal",
    "emerg": "fatal",
    "emergency": "fatal",
}

# The spellings SDKs actually send ("INFO", "Warning", "error") are found with one dict lookup; only odd
# casings or padded text pay for strip() + lower().
_ALIASES: Final[dict[str, str]] = {
    spelling: level
    for alias, level in _ALIASES_LOWER.items()
    for spelling in (alias, alias.upper(), alias.capitalize())
}

# index = severity number (0..24); index 0 is unused because 0 means "unspecified"
TEXT_BY_NUMBER: Final[tuple[str, ...]] = ("",) + tuple(level for level in SEVERITY_NUMBERS for _ in range(4))

# Keys checked in a JSON body, in priority order. Dotted keys are looked up flat first (as loggers like
# pino/zap emit them), then as the nested object they stand for.
_BODY_LEVEL_PATHS: Final[tuple[tuple[str, ...], ...]] = (
    ("level",),
    ("severity",),
    ("log.level",),
    ("log", "level"),
    ("config.log_level",),
    ("config", "log_level"),
)


def normalise_severity_text(text: str) -> str | None:
    """Return the canonical level for ``text`` (case-insensitive, surrounding blanks ignored), or None."""
    level = _ALIASES.get(text)
    if level is None:
        level = _ALIASES_LOWER.get(text.strip().lower())
    return level


def severity_text_for_number(number: int) -> str | None:
    """Return the canonical level of an OTLP severity number, or None when it is outside 1–24."""
    if 0 < number < 25:
        return TEXT_BY_NUMBER[number]
    return None


def body_severity(body: str) -> str | None:
    """Return the known level named inside a JSON-object body, or None (see the module docstring)."""
    # Cheap substring checks before parsing: every key we look for contains one of these words, and most
    # JSON bodies that reach here do carry one, but plain-text bodies starting with "{" mostly do not.
    if not body.startswith("{") or ("level" not in body and "severity" not in body):
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    for path in _BODY_LEVEL_PATHS:
        value: object = doc
        for key in path:
            if not isinstance(value, dict):
                value = None
                break
            value = value.get(key)
        if isinstance(value, str):
            level = normalise_severity_text(value)
            if level is not None:
                return level
    return None


def resolve_severity(severity_text: str, severity_number: int, body: str = "") -> tuple[str, int]:
    """Return the stored ``(severity_text, severity_number)`` for one record (precedence in the docstring)."""
    body_level = body_severity(body) if body.startswith("{") else None
    if body_level is not None:
        if 0 < severity_number < 25 and TEXT_BY_NUMBER[severity_number] == body_level:
            return body_level, severity_number
        return body_level, SEVERITY_NUMBERS[body_level]
    if 0 < severity_number < 25:
        return TEXT_BY_NUMBER[severity_number], severity_number
    level = normalise_severity_text(severity_text) or "info"
    return level, SEVERITY_NUMBERS[level]
