"""Secrets that must be read back are encrypted at rest, under a key from the settings or a key file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from logpond.meta.secretbox import SecretBox, SecretKeyError

KEY = "k" * 32


def test_a_sealed_value_opens_to_the_original_and_hides_it() -> None:
    """seal gives a different text each time (fresh nonce), never containing the secret; open restores it."""
    box = SecretBox(KEY)
    first, second = box.seal("slack_bot_token", "xoxb-secret-token"), box.seal("slack_bot_token", "xoxb-secret-token")
    assert first != second and first.startswith("enc:v1:")
    assert "secret" not in first
    assert box.open("slack_bot_token", first) == box.open("slack_bot_token", second) == "xoxb-secret-token"


def test_a_value_sealed_for_one_field_does_not_open_as_another() -> None:
    """The field name is bound to the ciphertext, so a sealed token moved into another field is refused."""
    box = SecretBox(KEY)
    with pytest.raises(SecretKeyError, match="webhook_url"):
        box.open("webhook_url", box.seal("slack_bot_token", "xoxb-secret-token"))


def test_another_key_or_a_damaged_value_is_refused() -> None:
    """A value sealed under another key, or altered, raises SecretKeyError naming the setting."""
    sealed = SecretBox(KEY).seal("signing_secret", "whsec_abc")
    with pytest.raises(SecretKeyError, match="LOGPOND_SECRET_KEY"):
        SecretBox("z" * 32).open("signing_secret", sealed)
    with pytest.raises(SecretKeyError):
        SecretBox(KEY).open("signing_secret", sealed[:-4] + "AAAA")
    with pytest.raises(SecretKeyError):
        SecretBox(KEY).open("signing_secret", "enc:v1:not base64!")


def test_fields_are_sealed_selectively_and_plain_values_open_as_they_are() -> None:
    """seal_fields seals only the named string fields; open_fields opens them and leaves the rest alone."""
    box = SecretBox(KEY)
    config = {"webhook_url": "https://hooks.example.com/x", "slack_channel_id": "C123", "slack_workspace_id": 7}
    sealed = box.seal_fields(config, ["webhook_url", "signing_secret"])
    assert sealed["slack_channel_id"] == "C123" and sealed["slack_workspace_id"] == 7
    assert sealed["webhook_url"].startswith("enc:v1:")
    assert box.open_fields(sealed) == config
    assert box.open_fields(config) == config


def test_a_short_key_is_refused() -> None:
    """A key shorter than 32 characters is a configuration error."""
    with pytest.raises(ValueError, match="32"):
        SecretBox("short")


def test_without_a_key_setting_a_private_key_file_is_created_once(tmp_path: Path) -> None:
    """With no key set, the first use writes <data_dir>/secret.key readable by the owner only, and later
    boxes of the same data dir read it back (so they open what the first sealed)."""
    first = SecretBox.for_data_dir(tmp_path)
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    sealed = first.seal("signing_secret", "whsec_abc")
    assert SecretBox.for_data_dir(tmp_path).open("signing_secret", sealed) == "whsec_abc"
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]
    with pytest.raises(SecretKeyError):
        SecretBox.for_data_dir(tmp_path, KEY).open("signing_secret", sealed)
