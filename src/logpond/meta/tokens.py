"""Random identifiers and secrets, shaped like PostHog's so clients that check prefixes keep working."""

from __future__ import annotations

import hashlib
import secrets

PROJECT_TOKEN_PREFIX = "phc_"
PERSONAL_API_KEY_PREFIX = "phx_"
_SECURE_VALUE_PREFIX = "sha256$"


def _random_chars(count: int) -> str:
    """``count`` URL-safe base64 characters carrying ~6 random bits each."""
    # token_urlsafe(n) yields ceil(4n/3) characters; ask for enough bytes and cut to the exact length.
    return secrets.token_urlsafe(count * 3 // 4 + 1)[:count]


def new_project_token() -> str:
    """A project token (``phc_`` + 43 characters); it is public, so stored in clear as PostHog does."""
    return PROJECT_TOKEN_PREFIX + _random_chars(43)


def new_personal_api_key() -> str:
    """A plain personal API key (``phx_`` + 47 characters); only its hash is ever stored."""
    return PERSONAL_API_KEY_PREFIX + _random_chars(47)


def new_personal_api_key_id() -> str:
    """The public id of a key record: short, random, safe in URLs."""
    return _random_chars(16)


def new_distinct_id() -> str:
    """The analytics distinct id of a user."""
    return _random_chars(43)


def new_password() -> str:
    """A generated password for the bootstrap admin: 24 characters, ~144 bits."""
    return _random_chars(24)


def hash_personal_api_key(plain: str) -> str:
    """The ``secure_value`` of a key. A plain sha256 is enough: keys are long random strings, not passwords,
    and the hash must be a cheap exact-match lookup on every API request."""
    return _SECURE_VALUE_PREFIX + hashlib.sha256(plain.encode("utf-8")).hexdigest()


def mask_personal_api_key(plain: str) -> str:
    """What we show instead of the key: its first and last four characters, e.g. ``phx_...abcd``."""
    return f"{plain[:4]}...{plain[-4:]}"
