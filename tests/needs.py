"""What a test needs from the machine, and what happens when it is missing."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest


def unavailable(message: str) -> NoReturn:
    """What a test needs is missing: a reason to skip on a developer's machine, a broken set-up
    in CI, where no test may skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


MountTmpfs = Callable[[Path, str], Path]


def mounts() -> Iterator[MountTmpfs]:
    """Mount at a path a tmpfs of a given size (`64m`), or a directory (`bind:<dir>`); every
    mount is undone after the test. Mounting needs root: without it the test is skipped (and
    fails in CI)."""
    mounted: list[Path] = []

    def mount(where: Path, size: str) -> Path:
        if os.geteuid() != 0:
            unavailable(f"mounting a file system needs root; the tests run as uid {os.geteuid()}")
        where.mkdir(exist_ok=True)
        if size.startswith("bind:"):
            argv = ["mount", "--bind", size.removeprefix("bind:"), str(where)]
        else:
            argv = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            unavailable(f"cannot mount a file system here: {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        if subprocess.run(["umount", str(where)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=False)
