"""Ending a child process for good: with every process it started.

A command killed at its timeout may have started helpers (git's transport helpers, ssh, the
`git-slurm-snapshot` that `git slurm-snapshot` runs) that hold its output pipes open or carry
on its work: killing the child alone would leave us waiting on them, or leave them working.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any


def kill_tree(proc: subprocess.Popen[Any]) -> None:
    """Kill `proc` and every process below it, then reap it."""
    for pid in [*descendants(proc.pid), proc.pid]:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=5)  # a daemon that escaped (ssh ControlPersist) must not hang us


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from Linux's /proc (empty where it cannot tell)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                listed = Path(f"/proc/{parent}/task/{task}/children").read_text()
                children = [int(c) for c in listed.split()]
            except (OSError, ValueError):
                continue
            found += children
            pending += children
    return found
