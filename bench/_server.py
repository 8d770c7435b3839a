"""Start and stop a real ``logpond serve`` for the benchmarks, and read its credentials."""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

LOGPOND = [sys.executable, "-m", "logpond.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_json(data_dir: Path, *args: str) -> object:
    out = subprocess.run(
        [*LOGPOND, *args, "--json", "--data-dir", str(data_dir)], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)


class Server:
    def __init__(self, data_dir: Path, port: int | None = None, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"

    def start(self, timeout: float = 60) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process, which outlives this call
        self.proc = subprocess.Popen(
            [*LOGPOND, "serve", "--data-dir", str(self.data_dir), "--port", str(self.port), "--log-level", "warning"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early; see {self.log_path}")
            try:
                if httpx.get(self.url + "/_health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not start in time")

    def peak_rss_bytes(self) -> int:
        """Peak resident set size of the server process so far (VmHWM)."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def post_all(port: int, path: str, headers: dict[str, str], bodies: list[bytes], start_at: float, out: Any) -> None:
    """A sender process: from ``start_at``, POST each body in turn (retrying after 429/503 as told), then
    put (ack latencies, retries, end time) on ``out``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    latencies: list[float] = []
    retries = 0
    while time.time() < start_at:
        time.sleep(0.001)
    for body in bodies:
        while True:
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status in (429, 503):
                retries += 1
                time.sleep(float(response.getheader("Retry-After", "1")))
                continue
            if response.status != 200:
                raise RuntimeError(f"unexpected status {response.status}")
            latencies.append(time.perf_counter() - t0)
            break
    out.put((latencies, retries, time.time()))


@dataclass
class SendResult:
    wall: float  # seconds from the common start to the last acknowledgement
    last_ack: float  # wall-clock time of the last acknowledgement
    latencies: list[float]  # sorted
    retries: int


def send_in_parallel(port: int, path: str, headers: dict[str, str], bodies: list[bytes], senders: int) -> SendResult:
    """Split ``bodies`` over ``senders`` processes that start together and POST them to ``path``."""
    out: mp.Queue[Any] = mp.Queue()
    start_at = time.time() + 1.0
    shares = [bodies[i::senders] for i in range(senders)]
    procs = [mp.Process(target=post_all, args=(port, path, headers, share, start_at, out)) for share in shares]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    last_ack = max(r[2] for r in results)
    return SendResult(
        wall=last_ack - start_at,
        last_ack=last_ack,
        latencies=sorted(lat for r in results for lat in r[0]),
        retries=sum(r[1] for r in results),
    )
