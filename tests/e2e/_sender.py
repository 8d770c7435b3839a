"""Load generator for the durability test: OTLP batches as fast as possible, acknowledged ids to a file.

Run as its own process (so the test can kill the server under real concurrent load)::

    python tests/e2e/_sender.py --url http://127.0.0.1:PORT --token phc_... --run runA --acked acked.txt

Several threads each loop: build a batch of ``--batch`` records (every record's body and ``e2e.id``
attribute is a unique id ``<run>.<batch>.<i>``; ``e2e.run`` and ``e2e.batch`` name its run and batch),
POST it to ``/i/v1/logs``, and, only after a 200, append one line ``<batch> <id> <id> ...`` to the
``--acked`` file, flushed and fsynced before the next request. A connection error means the server is
gone: the request was not acknowledged and every thread stops. The process is bounded: it also stops
after ``--max-requests`` requests or ``--max-seconds`` seconds. It prints a JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: make `tests` importable

from tests.e2e._otlp import export_request  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--acked", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--max-requests", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=15.0)
    args = parser.parse_args()

    batches = itertools.count()
    stop = threading.Event()
    lock = threading.Lock()
    statuses: Counter[str] = Counter()
    errors: list[str] = []
    deadline = time.monotonic() + args.max_seconds
    acked = open(args.acked, "a")  # noqa: SIM115 - shared by the threads, closed below

    def worker() -> None:
        with httpx.Client(base_url=args.url, timeout=30.0, trust_env=False,
                          headers={"Authorization": f"Bearer {args.token}",
                                   "Content-Type": "application/x-protobuf"}) as http:
            while not stop.is_set() and time.monotonic() < deadline:
                batch = next(batches)
                if batch >= args.max_requests:
                    return
                ids = [f"{args.run}.{batch}.{i}" for i in range(args.batch)]
                now = time.time_ns()
                body = export_request(
                    (now, rid, {"e2e.run": args.run, "e2e.batch": str(batch), "e2e.id": rid}) for rid in ids
                )
                try:
                    response = http.post("/i/v1/logs", content=body)
                except httpx.TransportError as exc:
                    with lock:
                        statuses["connection error"] += 1
                        errors.append(repr(exc))
                    stop.set()
                    return
                with lock:
                    statuses[str(response.status_code)] += 1
                    if response.status_code == 200:
                        acked.write(f"{batch} {' '.join(ids)}\n")
                        acked.flush()
                        os.fsync(acked.fileno())
                    elif len(errors) < 5:
                        errors.append(f"HTTP {response.status_code}: {response.text[:200]}")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.threads)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    acked.close()
    print(json.dumps({
        "run": args.run,
        "seconds": round(time.monotonic() - started, 3),
        "statuses": dict(statuses),
        "errors": errors[:5],
    }))


if __name__ == "__main__":
    main()
