"""Benchmark: the charter verification on the lab, serial versus parallel (pytest-xdist).

    .venv/bin/python benchmarks/verify_workers.py [--inventory inventories/lab] [--rounds 2]

Runs `educloud verify`'s pytest suite with 1 worker and with N workers, alternately, and
prints the wall time of each round and the median of each way. Needs the deployed lab
(`./run.sh deploy`); it only reads the deployment (the checks change nothing).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from educloud.charter.verify import pytest_argv
from educloud.deployment.ansible import ansible_env
from educloud.junit import read_cases, tally
from educloud.paths import repo_root


def one_run(inventory: Path, workers: int) -> tuple[float, dict[str, int]]:
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        argv = pytest_argv(inventory, junit, workers=workers)
        start = time.monotonic()
        subprocess.run(
            argv, cwd=repo_root(), env=ansible_env(inventory), capture_output=True, check=False
        )
        return time.monotonic() - start, tally(read_cases(junit))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", type=Path, default=repo_root() / "inventories" / "lab")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    times: dict[int, list[float]] = {1: [], args.workers: []}
    for round_ in range(1, args.rounds + 1):
        for workers in times:
            seconds, counts = one_run(args.inventory, workers)
            times[workers].append(seconds)
            print(
                f"round {round_}: {workers} worker(s): {seconds:6.1f} s "
                f"({counts['passed']} passed, {counts['failed']} failed, "
                f"{counts['skipped']} skipped)"
            )
    for workers, values in times.items():
        print(f"median with {workers} worker(s): {statistics.median(values):6.1f} s")
    serial, parallel = statistics.median(times[1]), statistics.median(times[args.workers])
    print(f"speed-up with {args.workers} workers: x{serial / parallel:.2f}")


if __name__ == "__main__":
    main()
