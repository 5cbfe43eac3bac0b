"""educloud.commands.run: never hands the caller's stdin to the command it runs."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from educloud.commands import run

PROBE = "import os, sys; print(os.get_blocking(0), sys.stdin.read() or '-')"


@pytest.fixture
def nonblocking_stdin() -> Iterator[None]:
    """This process's fd 0 replaced by a non-blocking pipe holding text, as CI's stdin was
    when a process beside the suite made the shared file description non-blocking."""
    saved = os.dup(0)
    read_end, write_end = os.pipe()
    os.write(write_end, b"caller's input")
    os.close(write_end)
    os.set_blocking(read_end, False)
    os.dup2(read_end, 0)
    os.close(read_end)
    try:
        yield
    finally:
        os.dup2(saved, 0)
        os.close(saved)


@pytest.mark.usefixtures("nonblocking_stdin")
def test_command_reads_an_empty_blocking_stdin_not_the_callers() -> None:
    # Ansible refuses to start on a non-blocking stdin ("requires blocking IO").
    done = run([sys.executable, "-c", PROBE], what="probe")
    assert done.stdout.split() == ["True", "-"]


@pytest.mark.usefixtures("nonblocking_stdin")
def test_command_given_input_reads_that_input() -> None:
    done = run([sys.executable, "-c", PROBE], what="probe", input_text="given")
    assert done.stdout.split() == ["True", "given"]
