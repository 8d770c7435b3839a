"""Log-template mining benchmark: `logpond.logs.patterns.mine` over demo log bodies, in one process.

    .venv/bin/python -m bench.patterns                    # 200,000 lines, 5 runs
    .venv/bin/python -m bench.patterns --lines 1000000 --runs 3

The lines are the `body` and `severity_text` columns of `logpond.demo.generate_log_tables` (a fixed seed
and end time, so every run mines the same lines): HTTP access lines, JSON and logfmt records, SQL, stack
traces. They are loaded into memory first; only mining is timed, each run with a fresh miner. The script
prints lines/s per run and the median.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

from logpond.demo import generate_log_tables
from logpond.logs.patterns import mine

END = datetime(2026, 1, 1, tzinfo=UTC)


def load_lines(n: int) -> list[tuple[str, str, int]]:
    lines: list[tuple[str, str, int]] = []
    for table in generate_log_tables(n, team_id=1, end=END):
        bodies = table.column("body").to_pylist()
        severities = table.column("severity_text").to_pylist()
        lines.extend((body, severity, 1) for body, severity in zip(bodies, severities, strict=True))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    lines = load_lines(args.lines)
    chars = sum(len(body) for body, _, _ in lines)
    print(f"{len(lines):,} demo lines, {chars / len(lines):.0f} characters on average")
    rates = []
    for run in range(1, args.runs + 1):
        t0 = time.perf_counter()
        patterns = mine(lines)
        elapsed = time.perf_counter() - t0
        rates.append(len(lines) / elapsed)
        print(f"run {run}: {rates[-1]:>10,.0f} lines/s  ({len(patterns)} patterns, {elapsed:.2f} s)")
    print(f"median: {statistics.median(rates):>9,.0f} lines/s")


if __name__ == "__main__":
    main()
