"""What the benchmarks share: a sealed git environment, timed commands, and statistics."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pygit2

BIN = Path(sys.executable).parent  # the venv's scripts: git finds git-slurm-snapshot here


def sealed_environment(home: Path) -> dict[str, str]:
    """No system or global git config of this machine; the venv's scripts first on PATH."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Bench\n\temail = bench@example.com\n"
        "[init]\n\tdefaultBranch = main\n[gc]\n\tauto = 0\n"
        '[protocol "file"]\n\tallow = always\n'
    )
    # nor a PYTHONDONTWRITEBYTECODE of the caller's: users' Pythons cache byte code, and without
    # the cache every run would compile git-slurm's modules anew
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GIT_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        PATH=f"{BIN}{os.pathsep}{env['PATH']}",
    )
    return env


def seal_this_process(env: dict[str, str], home: Path) -> None:
    """The same seal for in-process calls (git_slurm's own functions, libgit2's config)."""
    for name in [n for n in os.environ if n.startswith("GIT_")]:
        del os.environ[name]
    os.environ.update(env)
    levels = (
        pygit2.enums.ConfigLevel.GLOBAL,
        pygit2.enums.ConfigLevel.XDG,
        pygit2.enums.ConfigLevel.SYSTEM,
    )
    for level in levels:
        pygit2.settings.search_path[level] = str(home)


@dataclass(frozen=True)
class Ran:
    """One finished command: wall seconds, peak resident set, and its stdout."""

    seconds: float
    max_rss_mb: float  # of the largest process in the tree it started
    stdout: str
    cpu_seconds: float = 0.0  # user + system of it and of what it waited for


# On the reference VM, creating files costs several times more while the page cache is full
# (worktree add: 0.6 s right after dropping it, 1.2-3 s otherwise), whatever ran before.
# Dropping it before every timed case that writes files gives each the same start.
DROP_CACHES = Path("/proc/sys/vm/drop_caches")
settings = {"drop_caches": False}


def can_drop_caches() -> bool:
    return os.access(DROP_CACHES, os.W_OK)


def settle() -> None:
    """Before a timed case: earlier writes flushed, and (if chosen) the page cache dropped."""
    os.sync()
    if settings["drop_caches"]:
        DROP_CACHES.write_text("1\n")


def run(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    stdin: Optional[str] = None,
    expect: int = 0,
) -> Ran:
    """Run a command to completion; fail loudly (a benchmark of a failure means nothing).

    wait4's ru_maxrss is the largest resident set of the process and of every descendant it
    waited for: for `git slurm-snapshot` that covers Python and each git it ran.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = _exchange(proc, stdin)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != expect:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {err[-2000:]}")
    return Ran(seconds, usage.ru_maxrss / 1024, out, usage.ru_utime + usage.ru_stime)


def _exchange(proc: subprocess.Popen[str], stdin: Optional[str]) -> tuple[str, str]:
    """Feed stdin, read stdout and stderr, but leave the reaping to wait4."""
    assert proc.stdout is not None and proc.stderr is not None
    errors: list[str] = []
    stderr = proc.stderr
    reader = threading.Thread(target=lambda: errors.append(stderr.read()))
    reader.start()
    if proc.stdin is not None:
        proc.stdin.write(stdin or "")
        proc.stdin.close()
    out = proc.stdout.read()
    reader.join()
    return out, errors[0]


def timed(argv: list[str], cwd: Path, env: dict[str, str], stdin: Optional[str] = None) -> float:
    """Wall seconds of one command run."""
    return run(argv, cwd, env, stdin).seconds


@dataclass
class Series:
    """Repeated timings of one case."""

    name: str
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def low(self) -> float:
        return min(self.seconds)

    @property
    def high(self) -> float:
        return max(self.seconds)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def machine() -> str:
    """CPU model, cores, memory and git version, for the README."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    git = subprocess.run(["git", "version"], capture_output=True, text=True, check=False).stdout
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GB RAM, {git.strip()}"


def write_report(
    text: str, data: object, markdown: Optional[str], json_path: Optional[str]
) -> None:
    """Print a benchmark's report; keep it as markdown and its data as JSON where asked."""
    print(text)
    if markdown:
        Path(markdown).write_text(text + "\n")
    if json_path:
        Path(json_path).write_text(json.dumps(data, indent=2) + "\n")
