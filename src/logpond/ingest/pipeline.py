"""From request bytes to store rows, the same way at request time and at write-ahead-log replay."""

from __future__ import annotations

import os
import threading
import time

import pyarrow as pa

from logpond.ingest.otlp import decode_body, decode_log_table
from logpond.ingest.wal import KIND_ARROW_LOGS, KIND_OTLP_LOGS, Record


def decode_otlp_logs(body: bytes, *, team_id: int, received_ns: int, max_decompressed_bytes: int) -> pa.Table:
    """Rows of one OTLP/HTTP logs request (protobuf or JSON, gzip or plain), as received at ``received_ns``."""
    data = decode_body(body, max_decompressed_bytes=max_decompressed_bytes)
    return decode_log_table(data, team_id=team_id, now=received_ns)


def decode_otlp_logs_ipc(body: bytes, team_id: int, received_ns: int, max_decompressed_bytes: int) -> bytes:
    """``decode_otlp_logs`` for a worker process: the rows come back as Arrow IPC (cheap to pickle and read)."""
    table = decode_otlp_logs(
        body, team_id=team_id, received_ns=received_ns, max_decompressed_bytes=max_decompressed_bytes
    )
    return arrow_to_bytes(table, compression=None)


def exit_with_parent(parent_pid: int, poll_seconds: float = 0.5) -> None:
    """Initializer of a decode worker process: end it when the server that started it is gone.

    A server killed with SIGKILL cannot shut its pool down, and an idle worker would otherwise wait for
    work forever; a watcher thread sees the parent change and exits the worker.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def arrow_to_bytes(table: pa.Table, compression: str | None = "lz4") -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()  # type: ignore[no-any-return]


def arrow_from_bytes(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(payload).read_all()


def decode_wal_record(record: Record, *, max_decompressed_bytes: int) -> pa.Table:
    if record.kind == KIND_OTLP_LOGS:
        return decode_otlp_logs(
            record.payload,
            team_id=record.team_id,
            received_ns=record.received_ns,
            max_decompressed_bytes=max_decompressed_bytes,
        )
    if record.kind == KIND_ARROW_LOGS:
        return arrow_from_bytes(record.payload)
    raise ValueError(f"unknown write-ahead log record kind {record.kind}")
