"""URL slugs for organisations: lowercase ASCII letters and digits joined by single dashes."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

MAX_SLUG_LENGTH = 48
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
# Used when a name has no letters or digits at all (e.g. "!!!" or only emoji).
FALLBACK_SLUG = "organization"


def slugify(name: str) -> str:
    # Fold accents first so "Café" becomes "cafe" rather than "caf".
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_ALNUM.sub("-", ascii_name.lower()).strip("-")
    return slug[:MAX_SLUG_LENGTH].rstrip("-") or FALLBACK_SLUG


def slug_candidates(base: str) -> Iterator[str]:
    """``base``, then ``base-2``, ``base-3``, … each cut so the whole slug still fits the column."""
    yield base
    suffix = 2
    while True:
        tail = f"-{suffix}"
        yield base[: MAX_SLUG_LENGTH - len(tail)].rstrip("-") + tail
        suffix += 1
