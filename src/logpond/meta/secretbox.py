"""Secrets logpond must be able to read back (a Slack bot token, a webhook's signing secret, webhook URLs
that are credentials themselves), encrypted at rest in the metadata database.

Passwords and API keys are hashed (``passwords.py``, ``tokens.py``); these cannot be, since sending a
notification needs them in clear. Each value is sealed with AES-256-GCM under the server's key, with a
fresh nonce and the field's name as associated data (a sealed token cannot be passed off as another
field), and stored as ``enc:v1:<base64 nonce + ciphertext>``.

The key is ``LOGPOND_SECRET_KEY`` (any string of 32 characters or more; its SHA-256 is the AES key), or
else a random key kept in ``<data_dir>/secret.key`` (mode 0600), created on first use. Servers that share
one PostgreSQL database must share the key, so they set ``LOGPOND_SECRET_KEY``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "enc:v1:"
MIN_KEY_LENGTH = 32
_NONCE_BYTES = 12


class SecretKeyError(ValueError):
    """A sealed value that this key cannot open (another server's key, or a damaged value)."""


class SecretBox:
    def __init__(self, key: str) -> None:
        if len(key) < MIN_KEY_LENGTH:
            raise ValueError(f"the secret key must be at least {MIN_KEY_LENGTH} characters long")
        self._aead = AESGCM(hashlib.sha256(key.encode()).digest())

    @classmethod
    def for_data_dir(cls, data_dir: Path, key: str | None = None) -> SecretBox:
        """The box of ``key``, or of the key file in ``data_dir`` (created with a random key if missing)."""
        return cls(key if key else _key_file(data_dir / "secret.key"))

    def seal(self, field: str, value: str) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode(), field.encode())
        return PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, field: str, value: str) -> str:
        """The clear value; a value that was never sealed is returned as it is."""
        if not value.startswith(PREFIX):
            return value
        try:
            raw = base64.b64decode(value[len(PREFIX) :], validate=True)
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], field.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise SecretKeyError(
                f"cannot decrypt {field}: it was stored under another secret key (LOGPOND_SECRET_KEY)"
            ) from None

    def seal_fields(self, config: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
        """``config`` with the string values of ``fields`` sealed."""
        names = set(fields)
        return {k: self.seal(k, v) if k in names and isinstance(v, str) else v for k, v in config.items()}

    def open_fields(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` with every sealed value opened."""
        return {k: self.open(k, v) if isinstance(v, str) else v for k, v in config.items()}


def _key_file(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # written whole under a temporary name, then linked into place: a process racing us reads either no file
    # or a complete one, and the first link wins
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)
    return path.read_text().strip()
