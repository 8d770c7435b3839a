"""Password hashing with the standard library's scrypt.

Hashes are self-describing, ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``, so the cost can be raised later
without breaking existing users: verification always uses the parameters stored with the hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

_ALGORITHM = "scrypt"
_SALT_BYTES = 16
_HASH_BYTES = 32


@dataclass(frozen=True, slots=True)
class ScryptParams:
    n: int
    r: int
    p: int

    @property
    def max_memory(self) -> int:
        # scrypt needs about 128 * r * n bytes; OpenSSL refuses anything above maxmem, so leave headroom.
        return 128 * self.r * (self.n + self.p + 2) + 1024 * 1024


# One of OWASP's equivalent scrypt settings (N=2^14, r=8, p=5): 16 MiB and ~0.2 s per hash, which keeps
# memory per concurrent login modest in a thread pool.
DEFAULT_SCRYPT = ScryptParams(n=2**14, r=8, p=5)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, params: ScryptParams) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        maxmem=params.max_memory,
        dklen=_HASH_BYTES,
    )


def hash_password(password: str, params: ScryptParams = DEFAULT_SCRYPT) -> str:
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, params)
    return f"{_ALGORITHM}${params.n}${params.r}${params.p}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded``; a malformed hash never matches."""
    try:
        algorithm, n, r, p, salt_b64, digest_b64 = encoded.split("$")
        if algorithm != _ALGORITHM:
            return False
        params = ScryptParams(n=int(n), r=int(r), p=int(p))
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(digest_b64, validate=True)
        actual = _scrypt(password, salt, params)
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def burn_password_check(password: str, params: ScryptParams = DEFAULT_SCRYPT) -> None:
    """Spend the time a real check would take, so an unknown email can't be told apart by timing."""
    _scrypt(password, b"\0" * _SALT_BYTES, params)
