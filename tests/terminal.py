"""Running a program with its stderr on a pseudo-terminal, as a user at a terminal would."""

from __future__ import annotations

import os
import pty
import select
import subprocess
from pathlib import Path
from typing import Optional


def on_a_terminal(
    argv: list[str], cwd: Path, env: Optional[dict[str, str]] = None
) -> tuple[int, str, str]:
    """Run `argv` with stderr on a pty (stdout piped); its status, stdout, and everything the
    terminal showed, read until the program (and every child) closed it."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
        env={**os.environ, **(env or {})},
    )
    os.close(terminal)
    shown = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 120)
        assert ready, f"{argv} did not finish within 120 s"
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the terminal has no writer left
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=60), out, shown.decode()
