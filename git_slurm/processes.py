"""Child processes that end for good, with every process they started, within their bound.

A command killed at its timeout may have started helpers (git's transport helpers, ssh, the
`git-slurm-snapshot` that `git slurm-snapshot` runs, the real `squeue` behind a site's wrapper
script) that hold its output pipes open or carry on its work. Every child is therefore started
as the leader of a session of its own (`start_new_session`): its process group holds all it
starts, and one `killpg` ends them, with no race against a child forking meanwhile (walking
/proc for children could miss one forked between the walk and the kill). A new session has no
controlling terminal, so nothing of ours can prompt: git's own calls run with
GIT_TERMINAL_PROMPT=0 anyway, and a background process group reading the terminal would stop.

Sessions nest: a child of ours that is itself git-slurm (the launcher's `git slurm-snapshot`)
starts its own git calls in sessions of their own, out of reach of a `killpg` of its group.
So a group is first asked to end (SIGTERM: our apps undo their work as on Ctrl-C and end
their own children's groups), and only then killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

# Popen keyword arguments for every child: see the module docstring.
OWN_GROUP: dict[str, Any] = {"start_new_session": True}
# How long a group asked to end (SIGTERM) has before it is killed: enough for a snapshot to
# undo its branch and worktree, never long enough to look like a hang.
TERM_GRACE = 5.0
# How long a child's pipes may stay open after the child itself exited (a helper it left
# behind holds them) before that helper is killed: the answer is in by then.
PIPE_GRACE = 0.5
_POLL = 0.05  # how often `run_bounded` looks whether the child itself has exited
# How long a SIGKILLed group may take to be gone: the kernel closes a dying process's files
# (our pipe reads end) before it stops running, so "killed" is only "ended" once we looked.
KILL_SETTLE = 2.0


def kill_tree(proc: subprocess.Popen[Any]) -> None:
    """End `proc` and every process in its group (see OWN_GROUP), then reap it: SIGTERM
    first, so that a child of ours ends the sessions it started, then SIGKILL."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=TERM_GRACE)
    kill_group(proc)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=5)  # a daemon that escaped (ssh ControlPersist) must not hang us


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the process group `proc` leads. Its id is `proc.pid` and cannot be reused while
    a member lives, also after `proc` itself has exited and been reaped."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.kill()  # not a group leader after all (started without OWN_GROUP)
    deadline = time.monotonic() + KILL_SETTLE
    while _group_running(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.005)  # SIGKILL cannot be ignored: this is the kernel finishing its work


def _group_running(pgid: int) -> bool:
    """Is a member of process group `pgid` still running (neither a zombie nor gone)? Read
    from /proc, so a zombie that no init reaps (a container's pid 1) does not count; without
    /proc nothing can be known and nothing is waited for."""
    try:
        entries = os.scandir("/proc")
    except OSError:
        return False
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue  # exited while we looked
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                return True
    return False


def run_bounded(
    argv: Sequence[str], *, env: Mapping[str, str], timeout: float
) -> tuple[int, str, str]:
    """Run `argv` to its end, or kill its whole group at `timeout`: (status, stdout, stderr).

    Raises `subprocess.TimeoutExpired` when it did not exit in time. A helper that outlives
    the child and keeps its pipes open is killed `PIPE_GRACE` after the child exited, so a
    wrapper script's stray background process costs at most that.
    """
    proc = subprocess.Popen(
        list(argv), env=dict(env), text=True, errors="replace",
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **OWN_GROUP,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    exited_at = None
    try:
        while True:
            try:
                out, err = proc.communicate(timeout=_POLL)
                break
            except subprocess.TimeoutExpired:
                now = time.monotonic()
                if exited_at is None and _exited(proc):
                    exited_at = now
                if exited_at is not None and now - exited_at >= PIPE_GRACE:
                    kill_group(proc)
                    out, err = proc.communicate(timeout=5)
                    break
                if now >= deadline:
                    raise
    except BaseException:
        kill_tree(proc)
        raise
    return int(proc.returncode), out, err


def _exited(proc: subprocess.Popen[Any]) -> bool:
    """Has the child exited? Asked without reaping it: while it is a zombie its pid, and so
    its group's id, cannot go to another process, so `kill_group` cannot hit a stranger."""
    if proc.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True
