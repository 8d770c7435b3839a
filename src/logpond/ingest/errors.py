"""Errors raised while decoding an ingestion request, each carrying the HTTP status it maps to."""

from __future__ import annotations

from typing import ClassVar


class IngestError(Exception):
    """A request body we refuse; ``status`` is the HTTP status, ``reason`` a short human explanation."""

    status: ClassVar[int] = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DecodeError(IngestError):
    """The body is not valid gzip, OTLP protobuf or OTLP/JSON."""

    status: ClassVar[int] = 400


class PayloadTooLarge(IngestError):
    """The body, after decompression, is larger than the configured limit."""

    status: ClassVar[int] = 413
