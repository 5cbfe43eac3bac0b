"""Running external commands with errors a user can read."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

from educloud.errors import EducloudError


def run(
    argv: Sequence[str],
    *,
    what: str,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv; on failure raise EducloudError naming `what` and the command's last words."""
    try:
        result = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            check=False,
            input=input_text,
            # Never the caller's stdin: Ansible refuses a non-blocking one (CI's, when a
            # process beside it made the shared file description non-blocking).
            stdin=subprocess.DEVNULL if input_text is None else None,
        )
    except FileNotFoundError as exc:
        raise EducloudError(f"{what}: command {argv[0]!r} not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise EducloudError(f"{what}: timed out after {timeout:.0f} s") from exc
    if check and result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        detail = " / ".join(tail) if tail else f"exit status {result.returncode}"
        raise EducloudError(f"{what} failed: {detail}")
    return result
