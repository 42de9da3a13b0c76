"""`git_slurm_post_checkout PREV NEW FLAG`: the reminder the post-checkout hook runs.

Not a plumbum app: its interface is git's three hook arguments (or, under the pre-commit
framework, PRE_COMMIT_CHECKOUT_TYPE), and the whole hook has about 150 ms. Whatever happens it
returns 0 and prints at most two lines on stdout (git shows a hook's stdout on stderr): git
makes a post-checkout hook's exit status the checkout's own, and a reminder must never fail,
block or slow down a checkout.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from git_slurm.diskusage import human_bytes
from git_slurm.errors import GitSlurmError
from git_slurm.gitcli import environ_without_git, paths_as_bytes
from git_slurm.hookinstall import BOOT, PACKAGE_ROOT
from git_slurm.reminders import Reminder, Stale, gather, refresh_cache, refresh_lock
from git_slurm.repo import discover

REFRESH = "--refresh-cache"  # private: the detached refresh the hook starts
PREFIX = "git-slurm: "


def main(argv: Optional[list[str]] = None) -> int:
    """Print the reminder for git's hook arguments `argv`; always 0."""
    args = list(sys.argv[1:] if argv is None else argv)
    paths_as_bytes()  # an error naming a path that is not UTF-8 must not fail the checkout
    try:
        if args[:1] == [REFRESH]:
            refresh_cache(Path(args[1]), float(args[2]))
        else:
            for line in remind(args):
                print(line)
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # one line, whatever went wrong: the checkout itself succeeded
        print(f"{PREFIX}no reminder: {first_line(exc)}")
        if os.environ.get("GIT_SLURM_DEBUG"):
            import traceback  # only here: every millisecond of import counts in a hook

            traceback.print_exc(file=sys.stdout)
    return 0


def remind(args: list[str]) -> list[str]:
    """The lines to show after this checkout; none after a file checkout."""
    if checkout_type(args) != "1":
        return []
    checkout = discover()
    reminder = gather(checkout)
    if reminder is None:
        return []
    lines = describe(reminder, time.time())
    if reminder.refresh_needed:
        with contextlib.suppress(OSError):  # e.g. no process left for this user: next time
            start_refresh(checkout.common_dir, reminder.stale_before)
    return lines


def checkout_type(args: list[str]) -> Optional[str]:
    """git's third argument: 1 for a branch checkout, 0 for a file checkout."""
    if len(args) >= 3:
        return args[2]
    return os.environ.get("PRE_COMMIT_CHECKOUT_TYPE")


def start_refresh(common_dir: Path, stale_before: float) -> bool:
    """Refresh the cache in a detached process unless one already runs; never wait for it.

    A new session and /dev/null for stdio, so that neither git nor a terminal nor a caller
    reading the hook's output waits for it; the refresh lock goes with it (pass_fds).
    """
    lock = refresh_lock(common_dir)
    if lock is None:
        return False
    argv = [sys.executable, "-E", "-c", BOOT, str(PACKAGE_ROOT), REFRESH, str(common_dir)]
    try:
        subprocess.Popen(
            [*argv, repr(stale_before)],
            cwd=common_dir,
            env=environ_without_git(),  # the hook's GIT_DIR & co. must not outlive the hook
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=(lock,),
        )
    finally:
        os.close(lock)
    return True


def describe(reminder: Reminder, now: float) -> list[str]:
    """One line about snapshot worktrees and jobs, one about the branch; only what matters."""
    about = []
    if reminder.stale.count:
        about.append(stale_text(reminder.stale))
    if reminder.live_jobs or reminder.unknown_jobs:
        about.append(jobs_text(reminder, now))
    lines = [PREFIX + "; ".join(about)] if about else []
    if reminder.snapshot_branch:
        lines.append(branch_text(reminder.snapshot_branch))
    return lines


def stale_text(stale: Stale) -> str:
    many = stale.count != 1
    what = f"{stale.count} snapshot worktree{'s' if many else ''} older than {stale.older_than}"
    if stale.bytes:
        more = "over " if stale.unmeasured else ""
        what += f" {'hold' if many else 'holds'} {more}{human_bytes(stale.bytes)}"
    command = shlex.join(["git", "slurm-gc", "--older-than", stale.older_than])
    return f"{what}: {command}"


def jobs_text(reminder: Reminder, now: float) -> str:
    live, unknown = reminder.live_jobs, reminder.unknown_jobs
    if live:
        text = f"{live} job{'s' if live != 1 else ''} from snapshots still pending or running"
        text += f", {unknown} more of unknown state" if unknown else ""
    else:
        text = f"{unknown} job{'s' if unknown != 1 else ''} from snapshots of unknown state"
    checked = reminder.jobs_checked
    if checked is not None and now - checked >= 60:
        text += f" (as of {human_duration(now - checked)} ago)"
    return text


def branch_text(branch: str) -> str:
    return (
        f"{PREFIX}{branch} is a snapshot branch: commits here change no job (each job runs "
        f"its snapshot's worktree); to start work from it: git switch -c <new-branch>"
    )


def human_duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} d"


def first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(exc, GitSlurmError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
