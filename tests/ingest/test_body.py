"""decode_body: gzip detection by magic bytes, bounded decompression, and the errors it raises."""

from __future__ import annotations

import gzip
import time
import tracemalloc
import zlib

import pytest

from logpond.ingest.errors import DecodeError, IngestError, PayloadTooLarge
from logpond.ingest.otlp import decode_body

LIMIT = 1 << 20


def zeros_gzip(size: int) -> bytes:
    """A gzip stream of ``size`` zero bytes, compressed without ever holding them all in memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = []
    for _ in range(size // len(block)):
        parts.append(compressor.compress(block))
    parts.append(compressor.compress(bytes(size % len(block))))
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """About 64 KB of gzip that expands to 64 MiB, sixteen times the limit used with it."""
    return zeros_gzip(64 << 20)


def test_plain_body_is_returned_unchanged() -> None:
    """A body without the gzip magic bytes comes back as it is."""
    body = b"\x0a\x00plain protobuf"
    assert decode_body(body, max_decompressed_bytes=LIMIT) is body


def test_plain_body_over_the_limit_is_too_large() -> None:
    """The limit applies to uncompressed bodies too."""
    with pytest.raises(PayloadTooLarge) as excinfo:
        decode_body(b"x" * (LIMIT + 1), max_decompressed_bytes=LIMIT)
    assert excinfo.value.status == 413


def test_gzip_body_is_decompressed() -> None:
    """A gzip body is detected by its magic bytes and decompressed."""
    payload = b"some otlp bytes " * 1000
    assert decode_body(gzip.compress(payload), max_decompressed_bytes=LIMIT) == payload


def test_gzip_body_exactly_at_the_limit_is_accepted() -> None:
    """Decompressing to exactly the limit is fine; one byte more is not."""
    payload = bytes(range(256)) * (LIMIT // 256)
    assert decode_body(gzip.compress(payload), max_decompressed_bytes=LIMIT) == payload
    with pytest.raises(PayloadTooLarge):
        decode_body(gzip.compress(payload + b"!"), max_decompressed_bytes=LIMIT)


def test_gzip_bomb_is_rejected_quickly_without_expanding(bomb: bytes) -> None:
    """A small gzip expanding far past the limit fails fast and never allocates much more than the limit."""
    assert len(bomb) < 100_000
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(PayloadTooLarge):
            decode_body(bomb, max_decompressed_bytes=4 * LIMIT)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 4 * LIMIT + 3 * LIMIT  # the kept output plus about one output slice of slack


def test_multi_member_gzip_bomb_is_rejected() -> None:
    """Concatenated gzip members count against one shared limit."""
    member = zeros_gzip(LIMIT // 2)
    with pytest.raises(PayloadTooLarge):
        decode_body(member * 3, max_decompressed_bytes=LIMIT)


def test_concatenated_gzip_members_are_all_decompressed() -> None:
    """A multi-member gzip body (RFC 1952) decompresses to the concatenation of its members."""
    body = gzip.compress(b"first,") + gzip.compress(b"second,") + gzip.compress(b"third")
    assert decode_body(body, max_decompressed_bytes=LIMIT) == b"first,second,third"


def test_zero_padding_after_gzip_is_ignored() -> None:
    """Zero bytes after the last member are padding, as gzip(1) treats them."""
    assert decode_body(gzip.compress(b"data") + bytes(64), max_decompressed_bytes=LIMIT) == b"data"


def test_garbage_after_gzip_is_a_decode_error() -> None:
    """Non-zero bytes after the gzip stream are refused rather than silently dropped."""
    with pytest.raises(DecodeError, match="after the gzip stream"):
        decode_body(gzip.compress(b"data") + b"trailing", max_decompressed_bytes=LIMIT)


def test_truncated_gzip_is_a_decode_error() -> None:
    """A gzip stream cut short says it is truncated."""
    body = gzip.compress(bytes(range(256)) * 100)
    for cut in (2, 10, len(body) // 2, len(body) - 1):
        with pytest.raises(DecodeError, match="truncated") as excinfo:
            decode_body(body[:cut], max_decompressed_bytes=LIMIT)
        assert excinfo.value.status == 400


def test_corrupt_gzip_is_a_decode_error() -> None:
    """Corrupt deflate data is a 400 with zlib's reason."""
    body = bytearray(gzip.compress(b"hello world, hello world"))
    body[10:14] = b"\xff\xff\xff\xff"
    with pytest.raises(DecodeError, match="Invalid gzip body"):
        decode_body(bytes(body), max_decompressed_bytes=LIMIT)


def test_gzip_with_bad_checksum_is_a_decode_error() -> None:
    """A gzip member whose CRC does not match its data is refused."""
    body = bytearray(gzip.compress(b"payload"))
    body[-8] ^= 0xFF
    with pytest.raises(DecodeError, match="Invalid gzip body"):
        decode_body(bytes(body), max_decompressed_bytes=LIMIT)


def test_errors_carry_http_status_and_reason() -> None:
    """Both errors are IngestErrors with the status the API answers and a readable reason."""
    decode_error = DecodeError("bad")
    too_large = PayloadTooLarge("big")
    assert isinstance(decode_error, IngestError) and isinstance(too_large, IngestError)
    assert (decode_error.status, decode_error.reason) == (400, "bad")
    assert (too_large.status, too_large.reason) == (413, "big")
