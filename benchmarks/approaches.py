"""The ways of freezing code for a launch that git-slurm is measured against.

- `git worktree add --detach HEAD`: the reference, a plain checkout of the same repository.
- rsync of tracked files (as submitit's RsyncSnapshot and similar tools do, here over a
  shallow clone): once per launch.
- per-job clone: a temporary worktree, rsync of the whole tree (minus ignored files), `git add
  -A` + commit, then a full `git clone` of that commit by every job.

Each returns the wall seconds of the timed part; what it leaves behind is removed untimed.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from common import run, settle

SNAP_BRANCH = "bench-per-job-snapshot"


def worktree_add(
    repo: Path, scratch: Path, env: dict[str, str], config: tuple[str, ...] = ()
) -> float:
    """`git worktree add --detach <path> HEAD`, timed; then removed."""
    path = scratch / "baseline"
    settle()
    argv = ["git", *config, "worktree", "add", "-q", "--detach", str(path), "HEAD"]
    seconds = run(argv, repo, env).seconds
    remove_tree(path)
    run(["git", "worktree", "prune"], repo, env)
    return seconds


def rsync_tracked(repo: Path, scratch: Path, env: dict[str, str]) -> float:
    """Shallow clone, then rsync of every tracked and untracked-not-ignored file over it."""
    dest = scratch / "rsync-copy"
    settle()
    started = time.perf_counter()
    run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(dest)], scratch, env)
    listing = run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], repo, env
    ).stdout
    run(
        [
            "rsync",
            "-a",
            "--from0",
            "--files-from=-",
            "--ignore-missing-args",
            f"{repo}/",
            f"{dest}/",
        ],
        repo,
        env,
        stdin=listing,
    )
    seconds = time.perf_counter() - started
    remove_tree(dest)
    return seconds


def per_job_clone(repo: Path, scratch: Path, env: dict[str, str], jobs: int) -> float:
    """A commit of the whole tree made in a temporary worktree, then one full clone per job."""
    tmp = scratch / "per-job-tmp"
    clones = [scratch / f"per-job-{n}" for n in range(jobs)]
    settle()
    started = time.perf_counter()
    run(["git", "worktree", "add", "-q", "--detach", str(tmp), "HEAD"], repo, env)
    run(
        [
            "rsync",
            "-a",
            "--delete",
            "--exclude=/.git",
            "--filter=:- .gitignore",
            f"{repo}/",
            f"{tmp}/",
        ],
        repo,
        env,
    )
    run(["git", "add", "-A"], tmp, env)
    run(["git", "commit", "-q", "-m", "per-job snapshot"], tmp, env)
    run(["git", "branch", "-f", SNAP_BRANCH, "HEAD"], tmp, env)
    for clone in clones:
        run(["git", "clone", "-q", "--branch", SNAP_BRANCH, str(repo), str(clone)], scratch, env)
    seconds = time.perf_counter() - started
    for path in [tmp, *clones]:
        remove_tree(path)
    run(["git", "worktree", "prune"], repo, env)
    run(["git", "branch", "-D", SNAP_BRANCH], repo, env)
    return seconds


def remove_tree(path: Path) -> None:
    """Remove a directory and flush: the next timed case should not pay for this one's I/O."""
    if path.exists():
        shutil.rmtree(path)
    os.sync()
