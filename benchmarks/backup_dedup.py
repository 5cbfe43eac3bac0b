"""Benchmark: two nights of backups of the same school data, two ways, in one run.

    .venv/bin/python benchmarks/backup_dedup.py [--megabytes 200] [--changed 0.02]

1. restic: the backup agent's own run (roles/backup/files/educloud_backup_agent.py),
   encrypted and deduplicated, into a local repository;
2. full copies: a compressed tar of the whole tree every night (what a plain cron job
   would do), encrypted by nothing.
Night 1 backs up a synthetic tree (documents that compress, photos and videos that do
not); before night 2, a share of the files is rewritten and a few are added. Prints, for
each way and night, the time taken and the storage used, then the ratios. Runs on this
machine only (local files, no network); needs Debian's restic.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from educloud.backup import agent_module

WORDS = [
    "élève", "classe", "devoir", "rédaction", "exercice", "correction", "cahier", "leçon",
    "histoire", "géographie", "mathématiques", "physique", "français", "anglais", "projet",
]  # fmt: skip


def text_bytes(rng: random.Random, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        out += (" ".join(rng.choices(WORDS, k=40)) + ".\n").encode()
    return bytes(out[:size])


def make_tree(root: Path, megabytes: int, rng: random.Random) -> list[Path]:
    """About `megabytes` MiB: 60 % text documents (compressible), 40 % media (random)."""
    files: list[Path] = []
    budget = megabytes * 1024 * 1024
    n = 0
    while budget > 0:
        pupil = root / f"eleve{n % 60:03d}"
        pupil.mkdir(parents=True, exist_ok=True)
        if n % 5 < 3:
            size = rng.randint(20_000, 400_000)
            path = pupil / f"devoir{n:05d}.odt"
            path.write_bytes(text_bytes(rng, size))
        else:
            size = rng.randint(200_000, 3_000_000)
            path = pupil / f"photo{n:05d}.jpg"
            path.write_bytes(os.urandom(size))
        files.append(path)
        budget -= size
        n += 1
    return files


def change_tree(root: Path, files: list[Path], share: float, rng: random.Random) -> int:
    """Rewrite the end of `share` of the files and add as many new ones; returns bytes."""
    written = 0
    for path in rng.sample(files, max(1, int(len(files) * share))):
        with path.open("r+b") as handle:
            handle.seek(max(0, path.stat().st_size // 2))
            data = text_bytes(rng, 50_000)
            handle.write(data)
            written += len(data)
        new = path.with_name("nouveau-" + path.name)
        new.write_bytes(text_bytes(rng, 100_000))
        written += 100_000
    return written


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def agent_config(work: Path, data: Path) -> Path:
    password = work / "password"
    password.write_text("benchmark-only-password-0123456789\n")
    password.chmod(0o600)
    settings: dict[str, Any] = {
        "host": "bench",
        "repository": str(work / "repo"),
        "target": None,
        "password_file": str(password),
        "ssh_key": "/nonexistent",
        "known_hosts": "/nonexistent",
        "cache_dir": str(work / "cache"),
        "staging_dir": str(work / "staging" / "educloud"),
        "state_dir": str(work / "state"),
        "paths": [str(data)],
        "exclude": [],
        "postgresql": {"enabled": False},
        "nextcloud": None,
        "keep": {"daily_days": 7, "weekly_days": 28, "monthly_days": 30, "retention_days": 30},
        "tag": "educloud",
        "mail": None,
    }
    path = work / "backup.json"
    path.write_text(json.dumps(settings))
    return path


def restic_night(agent: ModuleType, config_path: Path, work: Path) -> tuple[float, int, int]:
    """Seconds, repository size, and what restic says the night added (compressed or not)."""
    start = time.monotonic()
    if agent.main(["--config", str(config_path), "run"]) != 0:
        raise SystemExit("the agent's run failed")
    status = json.loads((work / "state" / "status.json").read_text())
    return time.monotonic() - start, du(work / "repo"), int(status["last_run"]["data_added_bytes"])


def tar_night(data: Path, target: Path) -> tuple[float, int]:
    start = time.monotonic()
    with tarfile.open(target, "w:gz", compresslevel=6) as archive:
        archive.add(data, arcname="data")
    return time.monotonic() - start, target.stat().st_size


def mib(n: int) -> str:
    return f"{n / 1024 / 1024:8.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--changed", type=float, default=0.02, help="share of files changed")
    args = parser.parse_args()
    if not shutil.which("restic"):
        raise SystemExit("restic is not installed (apt-get install restic)")
    agent = agent_module.load()
    rng = random.Random(8)  # noqa: S311 - reproducible test data, not a secret
    with tempfile.TemporaryDirectory(prefix="educloud-bench-") as tmp:
        work, data = Path(tmp), Path(tmp) / "data"
        files = make_tree(data, args.megabytes, rng)
        config_path = agent_config(work, data)
        quiet = open(os.devnull, "w")  # noqa: SIM115 - the agent's step lines are not figures
        sys.stdout, real_stdout = quiet, sys.stdout
        try:
            if agent.main(["--config", str(config_path), "init"]) != 0:
                raise SystemExit("restic init failed")
            r1 = restic_night(agent, config_path, work)
            t1 = tar_night(data, work / "night1.tar.gz")
            changed = change_tree(data, files, args.changed, rng)
            r2 = restic_night(agent, config_path, work)
            t2 = tar_night(data, work / "night2.tar.gz")
        finally:
            sys.stdout = real_stdout
            quiet.close()
        source = du(data)
        print(f"data: {len(files)} files, {mib(source)}; night 2 rewrote {mib(changed)}")
        print(f"{'way':<22}{'night 1':>12}{'night 2':>12}{'stored after 2':>18}")
        print(f"{'restic (agent)':<22}{r1[0]:>10.1f} s{r2[0]:>10.1f} s{mib(r2[1]):>18}")
        print(f"{'full tar.gz each':<22}{t1[0]:>10.1f} s{t2[0]:>10.1f} s{mib(t1[1] + t2[1]):>18}")
        print(
            f"night 2 added: restic {mib(r2[2])}, tar {mib(t2[1])}; "
            f"storage after two nights: tar / restic = {(t1[1] + t2[1]) / r2[1]:.2f}x; "
            f"night-2 time: tar / restic = {t2[0] / r2[0]:.2f}x"
        )


if __name__ == "__main__":
    main()
