"""git-slurm's own cases: snapshots (fresh, reuse, incremental), capture alone, disk, memory."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from approaches import remove_tree
from common import Ran, run, settle
from refrepo import disk_bytes, remove_snapshots

from git_slurm.capture import capture_working_tree
from git_slurm.repo import discover

SNAPSHOT = ["git", "slurm-snapshot", "--json", "--no-push"]
EDITED = "train.py"  # the file the incremental case edits


@dataclass(frozen=True)
class SnapshotRuns:
    """One fresh snapshot, then the same tree again, then one file edited."""

    fresh: Ran
    reuse: Ran
    incremental: Ran


def snapshot(repo: Path, env: dict[str, str], expect: str) -> Ran:
    """`git slurm-snapshot`, checked to have taken the path the case is about."""
    settle()
    ran = run(SNAPSHOT, repo, env)
    data = json.loads(ran.stdout)
    took = _path_taken(data)
    if took != expect:
        raise RuntimeError(f"expected a {expect} snapshot, got {took}: {data}")
    return ran


def _path_taken(data: dict[str, Any]) -> str:
    if data["reused"]:
        return "reused"
    made = data.get("materialised") or {}
    return "checkout" if made.get("source") is None else "linked"


def snapshot_sequence(repo: Path, env: dict[str, str]) -> SnapshotRuns:
    """Fresh (no snapshot worktree exists), reuse, then incremental after a one-file edit."""
    remove_snapshots(repo, env)
    fresh = snapshot(repo, env, "checkout")
    reuse = snapshot(repo, env, "reused")
    edited = repo / EDITED
    original = edited.read_bytes()
    edited.write_bytes(original + b"# one more line\n")
    try:
        incremental = snapshot(repo, env, "linked")
    finally:
        edited.write_bytes(original)
    remove_snapshots(repo, env)
    return SnapshotRuns(fresh, reuse, incremental)


class InProcessCapture:
    """`capture_working_tree` called in this process: capture alone, no interpreter start."""

    def __init__(self, repo: Path, worktrees: Path) -> None:
        self.checkout = discover(repo)
        self.keep_out = [worktrees]

    def __call__(self) -> float:
        started = time.perf_counter()
        capture_working_tree(self.checkout, keep_out=self.keep_out)
        return time.perf_counter() - started


def startup(repo: Path, env: dict[str, str]) -> float:
    """`git slurm-snapshot` refused at its first check (an empty prefix): the interpreter, the
    imports, finding the repository and reading git config; none of the snapshot."""
    return run([*SNAPSHOT, "--prefix", ""], repo, env, expect=2).seconds


def plumbum_floor(repo: Path, env: dict[str, str]) -> float:
    """The floor of any plumbum app (the CLI framework is the user's choice): this interpreter
    started, plumbum imported, nothing else."""
    return run([sys.executable, "-c", "import plumbum.cli"], repo, env).seconds


def git_status(repo: Path, env: dict[str, str]) -> float:
    """The floor for reading the tree: the same walk and stat cache, nothing written."""
    return run(["git", "status", "--porcelain"], repo, env).seconds


@dataclass(frozen=True)
class Disk:
    snapshots: int
    snapshots_bytes: int  # all of them: worktrees and admin dirs, each inode counted once
    checkout_bytes: int  # one plain `git worktree add`


def disk_use(repo: Path, scratch: Path, worktrees: Path, env: dict[str, str], count: int) -> Disk:
    """Disk used by `count` snapshots, each one file apart, against one plain checkout."""
    remove_snapshots(repo, env)
    edited = repo / EDITED
    original = edited.read_bytes()
    try:
        for n in range(count):
            edited.write_bytes(original + f"# edit {n}\n".encode())
            run(SNAPSHOT, repo, env)
    finally:
        edited.write_bytes(original)
    used = disk_bytes(worktrees, repo / ".git/worktrees")
    remove_snapshots(repo, env)
    plain = scratch / "disk-checkout"
    run(["git", "worktree", "add", "-q", "--detach", str(plain), "HEAD"], repo, env)
    admin = repo / ".git/worktrees" / plain.name
    one = disk_bytes(plain, admin)
    remove_tree(plain)
    run(["git", "worktree", "prune"], repo, env)
    return Disk(count, used, one)


@dataclass(frozen=True)
class Memory:
    probe_mb: float  # size of the file captured and checked out
    fresh_mb: float  # peak RSS of a snapshot capturing it and checking it out
    incremental_mb: float  # peak RSS of the next snapshot, which links it


def memory_probe(repo: Path, scratch: Path, env: dict[str, str], probe_bytes: int) -> Memory:
    """Peak memory of `git slurm-snapshot` with one big file, in a throwaway shared clone (its
    objects stay out of the cached reference repository)."""
    clone = scratch / "memory-probe"
    remove_tree(clone)
    run(["git", "clone", "-q", "--shared", str(repo), str(clone)], scratch, env)
    run(["git", "config", "slurm.maxUntrackedSize", "0"], clone, env)
    block = os.urandom(2**20)  # incompressible, like a checkpoint
    with (clone / "weights.bin").open("wb") as out:
        for _ in range(probe_bytes // len(block)):
            out.write(block)
    fresh = run(SNAPSHOT, clone, env)
    (clone / "notes.txt").write_text("one more file\n")
    incremental = run(SNAPSHOT, clone, env)
    shutil.rmtree(clone)
    os.sync()
    return Memory(probe_bytes / 2**20, fresh.max_rss_mb, incremental.max_rss_mb)
