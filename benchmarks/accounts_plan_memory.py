"""Benchmark: peak memory and time of planning a whole academy's file, three ways.

    .venv/bin/python benchmarks/accounts_plan_memory.py [--lines 500000 100000]

Writes a canonical file of N synthetic accounts (pupils in classes of 28, a teacher in
one class, 40 schools), then, each in a process of its own whose peak RSS is read from
wait4():
1. `educloud accounts plan FILE --no-server --json` (streamed reading, compact accounts,
   changes streamed to /dev/null): an academy's first load;
2. the same accounts planned against a directory that already holds them all (the daily
   run), the directory's state built in memory the way `read_state` builds it — simulated:
   no Keycloak of the lab holds 500,000 accounts;
3. the naive reading: the whole file decoded at once and kept as a list of dicts, nothing
   else: the memory a "read everything first" tool needs before it even plans.
The target is a 500,000-line file planned in under 1 GiB.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from educloud.accounts.model import CANONICAL_FIELDS

UAIS = [f"{n:07d}" for n in range(750001, 750041)]
LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"


def write_file(path: Path, lines: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CANONICAL_FIELDS)
        for n in range(lines):
            digits = UAIS[n % len(UAIS)]
            uai = digits + LETTERS[int(digits) % 23]
            klass = f"C{(n // len(UAIS)) // 28:04d}"
            if n % 21 == 0:  # 21 and 40 coprime: every school has pupils and teachers
                row = [
                    f"prof{n:07d}",
                    "Jean",
                    f"Professeur {n}",
                    f"prof{n}@example.test",
                    "teacher",
                    uai,
                    klass,
                    "Équipe",
                    "2026-09-01",
                    "",
                    "",
                ]
            else:
                row = [
                    f"eleve{n:07d}",
                    "Léa",
                    f"Élève {n}",
                    "",
                    "pupil",
                    uai,
                    klass,
                    "",
                    "2026-09-01",
                    "2027-07-04",
                    "local",
                ]
            writer.writerow(row)


# The daily case: the realm already holds every account of the file. The state is built in
# memory as read_state builds it (shared group sets), then planned against again.
FULL_DIRECTORY = """
import sys
from datetime import date
from pathlib import Path
from educloud.accounts.model import DirectoryState
from educloud.accounts.plan import apply_to, plan
from educloud.accounts.policy import load_policy
from educloud.accounts.sync import read_accounts
policy = load_policy()
_, _, accounts, problems = read_accounts(
    Path(sys.argv[1]), mapping="canonical", encoding=None, policy=policy
)
assert not problems, problems[:3]
today = date(2026, 11, 26)
first = plan(DirectoryState(), accounts, school_year=2026, today=today, grace_days=90)
state = apply_to(DirectoryState(), first.changes)
del first
second = plan(state, accounts, school_year=2026, today=today, grace_days=90)
print(len(state.accounts), len(second.applicable))
"""

NAIVE = """
import csv, io, sys
text = open(sys.argv[1], encoding="utf-8").read()
rows = list(csv.DictReader(io.StringIO(text)))
print(len(rows))
"""


def measure(argv: list[str]) -> tuple[float, float, int]:
    """Seconds, peak RSS in MiB, exit status of one child process."""
    start = time.monotonic()
    with open(os.devnull, "w") as sink:
        child = subprocess.Popen(argv, stdout=sink, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.monotonic() - start
    return seconds, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[100_000, 500_000])
    args = parser.parse_args()
    educloud = str(Path(sys.executable).parent / "educloud")
    with tempfile.TemporaryDirectory() as tmp:
        for lines in args.lines:
            file = Path(tmp) / f"academie-{lines}.csv"
            write_file(file, lines)
            size = file.stat().st_size / 2**20
            plan = [educloud, "accounts", "plan", str(file), "--no-server", "--json"]
            naive = [sys.executable, "-c", NAIVE, str(file)]
            full = [sys.executable, "-c", FULL_DIRECTORY, str(file)]
            ways = (("educloud plan", plan), ("vs full realm", full), ("naive read", naive))
            for name, argv in ways:
                seconds, peak, code = measure(argv)
                print(
                    f"{lines:>7} lines ({size:5.1f} MiB) {name:>13}: {seconds:6.1f} s, "
                    f"peak RSS {peak:7.1f} MiB, {lines / seconds:8.0f} lines/s, exit {code}"
                )
            file.unlink()


if __name__ == "__main__":
    main()
