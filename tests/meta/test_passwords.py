"""Password hashing with the production scrypt settings (no database)."""

from __future__ import annotations

import pytest

from logpond.meta.passwords import DEFAULT_SCRYPT, check_password, hash_password


def test_default_hash_round_trips() -> None:
    """A hash made with the default settings verifies its password and records those settings."""
    encoded = hash_password("hunter2")

    assert encoded.startswith(f"scrypt${DEFAULT_SCRYPT.n}${DEFAULT_SCRYPT.r}${DEFAULT_SCRYPT.p}$")
    assert check_password("hunter2", encoded)
    assert not check_password("hunter3", encoded)


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "plain-text-password",
        "scrypt$1024$8$1$not base64!$AAAA",
        "bcrypt$1024$8$1$AAAA$AAAA",
        "scrypt$x$8$1$AA$AA",
    ],
)
def test_malformed_hashes_never_match(encoded: str) -> None:
    """A damaged or foreign hash in the database rejects every password instead of raising."""
    assert not check_password("plain-text-password", encoded)
    assert not check_password("", encoded)
