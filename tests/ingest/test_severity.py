"""Severity normalisation: alias table, number bands, JSON body levels and their precedence."""

from __future__ import annotations

import json

import pytest

from logpond.ingest.severity import (
    SEVERITY_NUMBERS,
    body_severity,
    normalise_severity_text,
    resolve_severity,
    severity_text_for_number,
)

ALIASES = {
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


@pytest.mark.parametrize(("alias", "level"), sorted(ALIASES.items()))
def test_every_alias_in_any_case_maps_to_its_level(alias: str, level: str) -> None:
    """Each alias, in lower, upper, title or odd case and with blanks around it, names its level."""
    alternating = "".join(char.upper() if index % 2 else char for index, char in enumerate(alias))
    for spelling in (alias, alias.upper(), alias.capitalize(), alternating, f" {alias}\n"):
        assert normalise_severity_text(spelling) == level
    assert resolve_severity(alias.upper(), 0) == (level, SEVERITY_NUMBERS[level])


@pytest.mark.parametrize("text", ["", "verbose", "informative", "warnings", "5", "ERROR!", "lvl=error"])
def test_unknown_or_empty_text_is_info(text: str) -> None:
    """Text outside the alias table (and no number) becomes info, number 9."""
    assert normalise_severity_text(text) is None
    assert resolve_severity(text, 0) == ("info", 9)


@pytest.mark.parametrize(
    ("number", "level"),
    [
        (1, "trace"),
        (4, "trace"),
        (5, "debug"),
        (8, "debug"),
        (9, "info"),
        (12, "info"),
        (13, "warn"),
        (16, "warn"),
        (17, "error"),
        (20, "error"),
        (21, "fatal"),
        (24, "fatal"),
    ],
)
def test_number_bands_at_every_boundary(number: int, level: str) -> None:
    """A severity number in 1–24 decides the text (whatever the text says) and is kept as sent."""
    assert severity_text_for_number(number) == level
    assert resolve_severity("fatal" if level != "fatal" else "trace", number) == (level, number)


@pytest.mark.parametrize("number", [0, -1, 25, 255, 1 << 20])
def test_numbers_outside_the_bands_fall_back_to_the_text(number: int) -> None:
    """0 (unspecified) and numbers no OTLP version defines are ignored in favour of the text."""
    assert severity_text_for_number(number) is None
    assert resolve_severity("warning", number) == ("warn", 13)


def test_canonical_numbers_start_each_band() -> None:
    """The number derived from text is the first of its band."""
    assert SEVERITY_NUMBERS == {"trace": 1, "debug": 5, "info": 9, "warn": 13, "error": 17, "fatal": 21}


@pytest.mark.parametrize(
    "body",
    [
        {"level": "error"},
        {"severity": "ERROR"},
        {"log.level": "err"},
        {"log": {"level": "Error"}},
        {"config.log_level": "eror"},
        {"config": {"log_level": "error"}},
        {"msg": "x", "nested": {"deep": 1}, "level": " error "},
    ],
)
def test_json_body_level_keys(body: dict[str, object]) -> None:
    """Each supported key (flat, dotted or nested) in a JSON object body names the level."""
    text = json.dumps(body)
    assert body_severity(text) == "error"
    assert resolve_severity("INFO", 0, text) == ("error", 17)


def test_json_body_keys_are_checked_in_priority_order() -> None:
    """level beats severity beats log.level beats config.log_level."""
    assert (
        body_severity(json.dumps({"config": {"log_level": "debug"}, "severity": "warn", "level": "fatal"}))
        == "fatal"
    )
    assert body_severity(json.dumps({"config.log_level": "debug", "severity": "warn"})) == "warn"
    assert body_severity(json.dumps({"config.log_level": "debug", "log": {"level": "trace"}})) == "trace"


def test_json_body_key_with_unknown_level_does_not_override() -> None:
    """A key holding something that is not a level is skipped; later keys may still count."""
    assert body_severity(json.dumps({"level": "verbose"})) is None
    assert body_severity(json.dumps({"level": "verbose", "severity": "warn"})) == "warn"
    assert resolve_severity("error", 0, json.dumps({"level": "verbose"})) == ("error", 17)


def test_json_body_non_string_level_does_not_override() -> None:
    """Numeric levels (pino's 30, 50) are not level names and are ignored."""
    assert body_severity(json.dumps({"level": 50})) is None
    assert resolve_severity("", 9, json.dumps({"level": 50})) == ("info", 9)


@pytest.mark.parametrize(
    "body",
    [
        '{"level": "error"',
        "level=error",
        '["level", "error"]',
        ' {"level": "error"}',
        '{"log": "level error"}',
        "",
    ],
)
def test_bodies_that_are_not_json_objects_do_not_override(body: str) -> None:
    """Plain text, broken JSON, arrays and bodies not starting with '{' leave severity alone."""
    assert body_severity(body) is None
    assert resolve_severity("debug", 0, body) == ("debug", 5)


def test_json_body_level_beats_severity_number() -> None:
    """The body's level wins over a number from another band, and the number follows the level."""
    assert resolve_severity("INFO", 9, '{"level": "error", "msg": "boom"}') == ("error", 17)
    assert resolve_severity("", 21, '{"severity": "debug"}') == ("debug", 5)


def test_json_body_level_keeps_a_number_from_its_own_band() -> None:
    """When the number already lies in the body level's band it is kept (ERROR2 stays 18)."""
    assert resolve_severity("ERROR", 18, '{"level": "error"}') == ("error", 18)
