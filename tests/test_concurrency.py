"""Twenty launches at once from two checkouts of one repository, while `git slurm-gc` loops.

14 `git slurm-snapshot --json` processes and 6 Hydra sweeps on submitit_local (snapshot on),
half in the main checkout and half in a linked worktree (`git worktree add`), all held at a
start barrier and let go together, while `git slurm-gc --older-than 0m` runs in a loop in both
checkouts until the last launch is done. Every launch must succeed, every job must have run
from its snapshot worktree (which existed until the job's end), no branch is made twice, the
object store is sound, git's lock files never surface, and neither checkout changes.

The barrier: every process writes one byte into a FIFO and then waits for a shared `flock` on
a file the test holds exclusively; once the test has read all twenty bytes it lets go.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest
from gitrepo import ROOT, Repo, git, user_state
from launcher_apps.support import make_app_repo, results
from test_snapshot import concurrent_snapshots

from git_slurm.launch import SnapshotSettings, own_handoff, record_jobs, take_launch_snapshot
from git_slurm.records import JobRef, add_jobs

SNAPSHOTS_PER_CHECKOUT = 7
SWEEPS_PER_CHECKOUT = 3
LAUNCHES = 2 * (SNAPSHOTS_PER_CHECKOUT + SWEEPS_PER_CHECKOUT)
JOBS_PER_SWEEP = 2
ARRIVAL_DEADLINE_S = 60.0
SWEEP_TIMEOUT_S = 240.0
STALE = 6
JOB_OUTPUTS = ("exp/multirun", "exp/outputs", "exp/.submitit")


class Barrier:
    """Holds started processes until every one of them has arrived, then lets all go."""

    def __init__(self, where: Path) -> None:
        self.fifo = where / "arrivals"
        self.lock = where / "start.lock"
        os.mkfifo(self.fifo)
        self.lock.touch()
        # read-write, so the FIFO never reports end-of-file between two arrivals
        self._fifo_fd = os.open(self.fifo, os.O_RDWR | os.O_NONBLOCK)
        self._lock_handle = self.lock.open("r")
        fcntl.flock(self._lock_handle, fcntl.LOCK_EX)

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv`, run only after arriving at the barrier and being let go."""
        script = 'printf . >"$0" && exec flock -o -s "$@"'
        return ["sh", "-c", script, str(self.fifo), str(self.lock), *argv]

    def release_when_all_arrived(self, count: int) -> None:
        arrived, deadline = 0, time.monotonic() + ARRIVAL_DEADLINE_S
        while arrived < count:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._fifo_fd], [], [], max(left, 0.0))
            if not ready:
                raise AssertionError(f"only {arrived} of {count} launches reached the barrier")
            arrived += len(os.read(self._fifo_fd, 4096))
        self.close()

    def close(self) -> None:
        if not self._lock_handle.closed:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            os.close(self._fifo_fd)


def barrier_snapshot_command(bin_dir: Path, barrier: Barrier) -> None:
    """A `git-slurm-snapshot` first on PATH that waits at the barrier, then runs the real one
    (for the snapshot processes that `concurrent_snapshots` starts)."""
    bin_dir.mkdir()
    shim = bin_dir / "git-slurm-snapshot"
    real = ROOT / "bin" / "git-slurm-snapshot"
    argv = " ".join(f"'{a}'" for a in barrier.wrap([str(real)]))
    shim.write_text(f'#!/bin/sh\nexec {argv} "$@"\n', encoding="utf-8")
    shim.chmod(0o755)


@dataclass(frozen=True)
class Sweep:
    app: Path
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


def start_sweep(app: Path, name: str, barrier: Barrier, env: dict[str, str], logs: Path) -> Sweep:
    """A 2-job sweep with the snapshot on, held at the barrier; its outputs in
    `multirun/<name>` of the app, its stdout and stderr in a log in `logs`."""
    argv = [
        sys.executable,
        "my_app.py",
        "-m",
        "seed=0,1",
        "hydra/launcher=submitit_local",
        "hydra.launcher.snapshot.enabled=true",
        "hydra.launcher.snapshot.push_to_remote=false",
        f"hydra.sweep.dir=multirun/{name}",
    ]
    log = logs / f"{app.parent.name}-{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            barrier.wrap(argv), cwd=app, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return Sweep(app, name, proc, log)


def gc_loop(checkouts: list[Path], done: threading.Event) -> list[subprocess.CompletedProcess[str]]:
    """`git slurm-gc --older-than 0m` in every checkout, over and over until `done`."""
    runs: list[subprocess.CompletedProcess[str]] = []
    while not done.is_set() or not runs:
        runs.extend(gc_now(checkout) for checkout in checkouts)
    return runs


def gc_now(checkout: Path) -> subprocess.CompletedProcess[str]:
    """`git slurm-gc --older-than 0m --json`: remove every snapshot worktree it may."""
    return subprocess.run(
        ["git", "slurm-gc", "--older-than", "0m", "--json"],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def stale_snapshots(repo: Repo) -> list[Path]:
    """Snapshot worktrees that `git slurm-gc --older-than 0m` removes at once: their one job
    (a process that has exited) is recorded, as the launcher records jobs. Each has other
    links, so each is a worktree of its own. Of the same base as the launches, they are what
    a new snapshot hard-links its files from: while gc removes them."""
    snaps = concurrent_snapshots(repo, [["--link", f"stale-{i}"] for i in range(STALE)])
    finished = subprocess.Popen(["true"])
    finished.wait()
    for snap in snaps:
        add_jobs(Path(snap["worktree"]), [JobRef(id=str(finished.pid), kind="local")])
    return [Path(snap["worktree"]) for snap in snaps]


def snapshot_branches(repo: Repo) -> list[str]:
    return repo.git("branch", "--list", "--format=%(refname:short)", "slurm-job-*").split()


def state_without_job_outputs(path: Path, git_dir: Path) -> dict[str, Any]:
    """The user's state, less the directories the sweeps' jobs write into by design."""
    state = user_state(path, git_dir)
    state["files"] = {k: v for k, v in state["files"].items() if not k.startswith(JOB_OUTPUTS)}
    return state


@contextmanager
def gc_running(checkouts: list[Path]) -> Iterator[Future[list[subprocess.CompletedProcess[str]]]]:
    done = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        runs = pool.submit(gc_loop, checkouts, done)
        try:
            yield runs
        finally:
            done.set()


def assert_clean_exit(what: str, returncode: int, stderr: str) -> None:
    """Success, or one `error:` line; never a traceback or one of git's lock files."""
    assert "Traceback" not in stderr, (what, stderr)
    assert ".lock" not in stderr, (what, stderr)
    if returncode != 0:
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (what, stderr)


def assert_jobs_ran_their_snapshot(app: Path, name: str, late_version: str) -> str:
    """Both jobs of sweep `name` ran from one snapshot worktree and imported its code;
    `os.getcwd()` at the job's end proves the worktree was still there. Returns the branch."""
    got = results(app / "multirun" / name)
    assert len(got) == JOBS_PER_SWEEP, name
    branches = set()
    for result in got:
        record = Path(result["output_dir"], ".hydra", "snapshot.json").read_text()
        snap: dict[str, Any] = json.loads(record)
        branches.add(snap["branch"])
        assert result["cwd"] == snap["workdir"] == os.path.join(snap["worktree"], "exp")
        late = result["modules"]["late"]
        assert late["version"] == late_version
        assert late["file"] == os.path.join(snap["workdir"], "late.py")
        assert result["commit_env"] == snap["commit"]
    assert len(branches) == 1, got
    return str(branches.pop())


def launch_all(
    checkouts: list[Path], barrier: Barrier, sweep_env: dict[str, str]
) -> tuple[dict[Path, list[dict[str, Any]]], list[Sweep], list[subprocess.CompletedProcess[str]]]:
    """Start every launch, let them go together, loop gc until all are done; return the
    snapshot processes' JSON, each sweep (finished) and every gc run."""
    sweeps = [
        start_sweep(path / "exp", f"sweep-{i}", barrier, sweep_env, barrier.fifo.parent)
        for path in checkouts
        for i in range(SWEEPS_PER_CHECKOUT)
    ]
    try:
        with ThreadPoolExecutor(max_workers=len(checkouts)) as pool:
            # each stands for a launch: this process, alive throughout, will "record" the jobs
            argvs = [["--handoff", own_handoff().token]] * SNAPSHOTS_PER_CHECKOUT
            runs = {p: pool.submit(concurrent_snapshots, Repo(p), argvs) for p in checkouts}
            barrier.release_when_all_arrived(LAUNCHES)
            with gc_running(checkouts) as gc_runs:
                for sweep in sweeps:
                    sweep.proc.wait(timeout=SWEEP_TIMEOUT_S)
                snaps = {path: run.result() for path, run in runs.items()}
    finally:
        barrier.close()  # a failure above must not leave launches waiting forever
        for sweep in sweeps:
            if sweep.proc.poll() is None:
                sweep.proc.kill()
    return snaps, sweeps, gc_runs.result()


def test_twenty_launches_from_two_checkouts_while_gc_loops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, _ = make_app_repo(tmp_path / "project")
    linked = tmp_path / "linked"
    repo.git("worktree", "add", "-q", "-b", "other", str(linked))
    stale = stale_snapshots(repo)
    stale_branches = snapshot_branches(repo)
    versions = {repo.path: "main", linked: "linked"}
    for path, version in versions.items():  # a dirty tree per checkout, each its own
        (path / "exp" / "late.py").write_text(f'VERSION = "{version}"\n', encoding="utf-8")
    git_dirs = {repo.path: repo.path / ".git", linked: repo.path / ".git/worktrees/linked"}
    before = {p: state_without_job_outputs(p, git_dirs[p]) for p in versions}

    barrier = Barrier(tmp_path)
    sweep_env = dict(os.environ)
    barrier_snapshot_command(tmp_path / "barrier-bin", barrier)
    monkeypatch.setenv("PATH", f"{tmp_path / 'barrier-bin'}{os.pathsep}{os.environ['PATH']}")
    snaps, sweeps, gc_runs = launch_all(list(versions), barrier, sweep_env)

    for sweep in sweeps:
        output = sweep.log.read_text(encoding="utf-8")
        assert sweep.proc.returncode == 0, (sweep.app, sweep.name, output)
        assert "Traceback" not in output and ".lock" not in output, output
    assert len(gc_runs) >= 2
    removed = {
        w["path"]
        for run in gc_runs
        for w in json.loads(run.stdout)["worktrees"]
        if w["action"] == "removed"
    }
    assert removed >= {str(path) for path in stale}
    assert not any(path.exists() for path in stale)
    for run in gc_runs:
        assert_clean_exit("git slurm-gc", run.returncode, run.stderr)
        assert run.returncode == 0, run.stderr

    branches = []
    for path, version in versions.items():
        for snap in snaps[path]:  # each snapshot process got its own checkout's code
            late = Path(snap["worktree"], "exp", "late.py").read_text(encoding="utf-8")
            assert late == f'VERSION = "{version}"\n'
            branches.append(snap["branch"])
        for i in range(SWEEPS_PER_CHECKOUT):
            branches.append(assert_jobs_ran_their_snapshot(path / "exp", f"sweep-{i}", version))
    assert len(set(branches)) == LAUNCHES
    assert sorted(snapshot_branches(repo)) == sorted(branches + stale_branches)

    fsck = subprocess.run(
        ["git", "fsck", "--full"], cwd=repo.path, capture_output=True, text=True, check=False
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert git(linked, "branch", "--show-current").strip() == "other"
    for path in versions:
        assert state_without_job_outputs(path, git_dirs[path]) == before[path]


def live_process() -> subprocess.Popen[bytes]:
    """A local job that runs until the test closes its stdin."""
    return subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=PIPE)


def gc_actions(repo: Repo) -> dict[str, str]:
    """worktree path -> `<action> <reason>` of one gc run."""
    res = gc_now(repo.path)
    assert res.returncode == 0, res.stderr
    return {w["path"]: f"{w['action']} {w['reason']}" for w in json.loads(res.stdout)["worktrees"]}


def test_a_reusing_launch_is_protected_until_its_own_jobs_are_recorded(repo: Repo) -> None:
    """Launch A makes the worktree, launch B reuses it; A records its jobs only after B's
    snapshot (its submission was slower) and they have already ended. B's jobs are about to
    start there: gc must keep the worktree until B has recorded them and they have ended.
    (Both launches go through the launcher's own calls: snapshot, then record the jobs.)"""
    repo.write("pkg/model.py", "VERSION = 'shared'\n")
    launch_a = take_launch_snapshot(SnapshotSettings(push_to_remote=False), repo.path)
    launch_b = take_launch_snapshot(SnapshotSettings(push_to_remote=False), repo.path)
    assert launch_b.reused and launch_b.worktree == launch_a.worktree
    worktree = str(launch_a.worktree)
    finished = subprocess.Popen(["true"])
    finished.wait()
    record_jobs(launch_a, [str(finished.pid)], "local")  # late, and over already

    assert gc_actions(repo)[worktree] == "kept in-use"  # B has recorded nothing yet

    job = live_process()
    try:
        record_jobs(launch_b, [str(job.pid)], "local")
        assert gc_actions(repo)[worktree] == "kept live-job"
    finally:
        job.communicate(b"")
    assert gc_actions(repo)[worktree] == "removed unused"
    assert not launch_a.worktree.exists()


def test_git_lock_files_held_by_the_user_do_not_stop_a_snapshot(repo: Repo, tmp_path: Path) -> None:
    """The user's own git holds its locks (a commit, a config edit, `git pack-refs`, a
    stale lock on the very branch name a snapshot would take) in both checkouts: snapshots
    need none of them (a private index, a fresh name) and gc runs; every lock stays as it
    was, nothing waits and no `.lock` error surfaces."""
    linked = tmp_path / "linked"
    repo.git("worktree", "add", "-q", "-b", "other", str(linked))
    repo.git("pack-refs", "--all")
    common = repo.path / ".git"
    now = time.time()
    stamps = [time.strftime("%Y%m%d-%H%M%S", time.localtime(now + s)) for s in range(-1, 120)]
    held = [
        common / "index.lock",
        common / "HEAD.lock",
        common / "config.lock",
        common / "packed-refs.lock",
        common / "worktrees/linked/index.lock",
        common / "worktrees/linked/HEAD.lock",
        *(common / f"refs/heads/slurm-job-{stamp}.lock" for stamp in stamps),
    ]
    for lock in held:
        lock.write_text("held by the user's git\n")
    for checkout in (repo.path, linked):
        (checkout / "pkg/model.py").write_text(f"VERSION = '{checkout.name}'\n")
    git_dirs = {repo.path: common, linked: common / "worktrees/linked"}
    before = {path: user_state(path, git_dir) for path, git_dir in git_dirs.items()}

    for checkout in (repo.path, linked):
        snap = Repo(checkout).snapshot_json()
        assert re.fullmatch(r"slurm-job-\d{8}-\d{6}-\d+", snap["branch"])  # the held name skipped
        assert (
            Path(snap["worktree"], "pkg/model.py").read_text() == f"VERSION = '{checkout.name}'\n"
        )
        gc = gc_now(checkout)
        assert_clean_exit("git slurm-gc", gc.returncode, gc.stderr)
        assert gc.returncode == 0, gc.stderr

    assert all(lock.read_text() == "held by the user's git\n" for lock in held)
    for lock in held:
        lock.unlink()
    for path, git_dir in git_dirs.items():
        assert user_state(path, git_dir) == before[path]
