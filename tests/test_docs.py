"""The docs keep up with the code: every setting and every CLI option is documented."""

from __future__ import annotations

from pathlib import Path

import typer.main

from logpond.cli import app
from logpond.config import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented() -> None:
    """Each setting's environment variable appears in docs/settings.md."""
    text = (DOCS / "settings.md").read_text()
    missing = [f"LOGPOND_{name.upper()}" for name in Settings.model_fields if f"`LOGPOND_{name.upper()}`" not in text]
    assert missing == []


def _commands(group: typer.Typer) -> list[tuple[str, list[str]]]:
    click_group = typer.main.get_command(group)
    found = []

    def walk(command: object, prefix: str) -> None:
        sub = getattr(command, "commands", None)
        if sub:
            for name, child in sub.items():
                walk(child, f"{prefix} {name}".strip())
            return
        options = [opt for param in command.params for opt in param.opts if opt.startswith("--")]  # type: ignore[attr-defined]
        found.append((prefix, options))

    walk(click_group, "")
    return found


def test_every_cli_command_and_option_is_documented() -> None:
    """Each `logpond` command and each of its long options appears in docs/cli.md."""
    text = (DOCS / "cli.md").read_text()
    missing = []
    for command, options in _commands(app):
        if f"logpond {command}" not in text:
            missing.append(f"logpond {command}")
        missing.extend(f"logpond {command} {opt}" for opt in options if opt != "--help" and f"`{opt}`" not in text)
    assert missing == []
