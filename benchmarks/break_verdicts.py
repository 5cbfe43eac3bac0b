"""Benchmark: what one break of the catalogue costs, two ways, on the lab.

    .venv/bin/python benchmarks/break_verdicts.py [--breaks ID,ID,...] [--rounds 2]

For each break (by default one per kind: a host file, nftables, Keycloak, nginx TLS), with
the break in force: the verification of its whole guarantee (what the catalogue ran until
December 2026) against the verification of the checks the break names (`checks:`, what it
runs now); both must say "échec". Then, with nothing broken, the start-up of an empty
charter run with and without Hypothesis's pytest plugin (installed for the unit tests,
blocked in charter runs). Prints each round and the medians. Needs the deployed lab
(`./run.sh deploy`); every break is restored before the next measure.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from educloud.charter import verify as verify_mod
from educloud.charter.verify import pytest_argv
from educloud.deployment.ansible import ansible_env
from educloud.paths import inventories_dir, repo_root

sys.path.insert(0, str(repo_root()))
from tests.lab import breaks  # the catalogue's data and runner

DEFAULT_BREAKS = (
    "host-ssh-password-login,egress-accept-all,kc-master-brute-force-off,web-tls-cbc-suite"
)


def verdict(broken: breaks.Break, selection: str, workers: int) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.monotonic()
        result = verify_mod.verify(
            inventories_dir() / "lab",
            Path(tmp),
            limit=",".join(broken.hosts),
            workers=workers,
            guarantees=[broken.guarantee],
            quiet=True,
            selection=selection,
        )
        return time.monotonic() - start, result.report[0].status


def start_up(hypothesis: bool) -> float:
    """An empty charter run (collection, nothing selected) with or without the plugin."""
    inventory = inventories_dir() / "lab"
    with tempfile.TemporaryDirectory() as tmp:
        argv = pytest_argv(inventory, Path(tmp) / "j.xml", selection="no_check_is_named_so")
        if hypothesis:
            at = argv.index("no:hypothesispytest")
            argv = argv[: at - 1] + argv[at + 1 :]
        start = time.monotonic()
        subprocess.run(argv, cwd=repo_root(), env=ansible_env(inventory), capture_output=True)
        return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--breaks", default=DEFAULT_BREAKS)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    catalogue = {b.id: b for b in breaks.load()}
    actions = breaks.LabActions()
    ways: dict[str, list[float]] = {
        "whole guarantee (2 workers)": [],
        "named checks (1 worker)": [],
    }
    for round_ in range(1, args.rounds + 1):
        for break_id in args.breaks.split(","):
            broken = catalogue[break_id]
            with actions.applied(broken):
                whole = verdict(broken, "", 2)
                named = verdict(broken, broken.selection, 1)
            for (way, values), (seconds, status) in zip(ways.items(), (whole, named), strict=True):
                values.append(seconds)
                print(f"round {round_}: {break_id} ({broken.guarantee}), {way}: ", end="")
                print(f"{seconds:5.1f} s, {status}")
    for way, values in ways.items():
        print(f"median per break, {way}: {statistics.median(values):5.1f} s")
    plugin: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds * 2):
        for hypothesis in plugin:
            plugin[hypothesis].append(start_up(hypothesis))
    for hypothesis, values in plugin.items():
        said = "with" if hypothesis else "without"
        median = statistics.median(values)
        print(f"median start-up of a charter run {said} Hypothesis's plugin: {median:4.1f} s")


if __name__ == "__main__":
    main()
