"""What a launcher asks of git-slurm: one snapshot per launch, and the jobs recorded with it.

The launcher runs the `git slurm-snapshot --json` command (the design's contract) rather than the
Python API, so that a launch snapshots exactly as the user's own `git slurm-snapshot` would, with
the same git config, hooks switched off, and errors in the same words. Core returns data: the
Hydra plugin logs it and turns failures into its own exception.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from git_slurm.errors import GitSlurmError
from git_slurm.processes import OWN_GROUP, TERM_GRACE, kill_tree
from git_slurm.records import Handoff, JobRef, SnapshotRecord, add_jobs

SNAPSHOT_TIMEOUT = 900.0  # a first push of a big repository can be slow; never hang forever
SCRIPT = "git-slurm-snapshot"
# How long a snapshot that no launch will take may still run to its end before it is asked to
# end: a snapshot that finished is undone in full, one interrupted right after it made its
# worktree would leave that to gc (a push that hangs is why there is a bound at all)
FINISH_WAIT = 10.0
CAPTURE_POLL = 0.1  # seconds between looks whether a snapshot that has not said `captured` ended


@dataclass(frozen=True)
class SnapshotSettings:
    """The `snapshot` block of the launcher config, as `git slurm-snapshot` options."""

    branch_prefix: str = "slurm-job"
    symlink_paths: tuple[str, ...] = ("outputs", "multirun", ".submitit")
    push_to_remote: bool = True
    worktree_dir: Optional[str] = None
    message: Optional[str] = None
    submodules: Optional[bool] = None  # None: the tool's default (git config slurm.submodules)

    def options(self) -> list[str]:
        """Command-line options; `push_to_remote: true` keeps the tool's default (push when a
        remote exists, warn when that fails) so that a repository without a remote still
        launches; false never pushes."""
        argv = ["--json", "--prefix", self.branch_prefix]
        for path in self.symlink_paths:
            argv += ["--link", path]
        if self.worktree_dir is not None:
            argv += ["--worktree-dir", str(Path(self.worktree_dir).expanduser())]
        if not self.push_to_remote:
            argv.append("--no-push")
        if self.message:
            argv += ["-m", self.message]
        if self.submodules is not None:
            argv.append("--submodules" if self.submodules else "--no-submodules")
        return argv


@dataclass(frozen=True)
class LaunchSnapshot:
    """One launch's snapshot, as `git slurm-snapshot --json` reported it, plus where it ran."""

    branch: str
    commit: str
    base: Optional[str]
    dirty: bool
    worktree: Path
    workdir: Path  # the launch directory's counterpart inside the worktree
    origin: Path  # root of the original checkout
    launch_dir: Path  # where the user launched from, in the original checkout
    pushed: Optional[str]
    reused: bool
    notes: tuple[str, ...]
    seconds: float  # wall time of the whole command, as the launcher waited for it

    @classmethod
    def from_json(cls, data: dict[str, Any], launch_dir: Path, seconds: float) -> LaunchSnapshot:
        if not data.get("worktree") or not data.get("workdir"):
            raise GitSlurmError("git slurm-snapshot made no worktree; the jobs need one")
        worktree, workdir = Path(data["worktree"]), Path(data["workdir"])
        return cls(
            branch=data["branch"],
            commit=data["commit"],
            base=data.get("base"),
            dirty=bool(data["dirty"]),
            worktree=worktree,
            workdir=workdir,
            origin=original_root(launch_dir, workdir.relative_to(worktree)),
            launch_dir=launch_dir,
            pushed=data.get("pushed"),
            reused=bool(data.get("reused")),
            notes=tuple(data.get("notes") or ()),
            seconds=seconds,
        )

    def summary(self, waited: Optional[float] = None) -> str:
        """One line for the launch log: what runs, from where, and what it cost (`waited`: how
        much of that the launch waited for, the rest ran while Hydra's sweeper worked)."""
        state = "dirty: uncommitted changes included" if self.dirty else "clean"
        made = "reused" if self.reused else "new"
        pushed = f"pushed to {self.pushed}" if self.pushed else "not pushed"
        took = f"took {self.seconds:.2f} s"
        if waited is not None:
            took += f", the launch waited {waited:.2f} s for it"
        return (
            f"snapshot {self.branch} at {self.commit[:12]} ({state}), {made} worktree "
            f"{self.worktree}, {pushed}, {took}"
        )

    def record(self) -> dict[str, Any]:
        """What each job's output dir keeps: the code it ran, and where that was."""
        return {
            "branch": self.branch,
            "commit": self.commit,
            "base": self.base,
            "dirty": self.dirty,
            "worktree": str(self.worktree),
            "workdir": str(self.workdir),
            "origin": str(self.origin),
            "launch_dir": str(self.launch_dir),
            "pushed": self.pushed,
        }


def original_root(launch_dir: Path, prefix: Path) -> Path:
    """The original checkout's root: `launch_dir` minus the worktree-relative `prefix`."""
    root = launch_dir.resolve()
    for _ in prefix.parts:
        root = root.parent
    return root


def snapshot_environment() -> dict[str, str]:
    """The caller's environment with this interpreter's bin dir first on PATH, so that
    `.venv/bin/python app.py` finds the `git-slurm-snapshot` installed beside it."""
    env = dict(os.environ)
    here = str(Path(sys.executable).parent)  # not resolved: a venv's python is a symlink
    env["PATH"] = os.pathsep.join([here, env.get("PATH", "")]) if env.get("PATH") else here
    return env


def snapshot_command(env: dict[str, str]) -> list[str]:
    """`git slurm-snapshot` when git can find it, else the same app through this interpreter."""
    if shutil.which(SCRIPT, path=env.get("PATH")):
        return ["git", "slurm-snapshot"]
    return [sys.executable, "-m", "git_slurm.cli.snapshot"]


def error_line(stderr: str, returncode: int) -> str:
    """The tool's one `error: ...` line, without the prefix (or its last words, if none)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in lines:
        if line.startswith("error: "):
            return line[len("error: ") :]
    return lines[-1] if lines else f"git slurm-snapshot exited with status {returncode}"


def take_launch_snapshot(settings: SnapshotSettings, launch_dir: Path) -> LaunchSnapshot:
    """Run `git slurm-snapshot --json` in `launch_dir`; any failure is a GitSlurmError."""
    return start_launch_snapshot(settings, launch_dir).result()


def start_launch_snapshot(settings: SnapshotSettings, launch_dir: Path) -> PendingSnapshot:
    """Start `git slurm-snapshot --json` in `launch_dir` and return at once: a launcher starts
    it while Hydra's sweeper still composes the jobs' configs, and takes its `result` when it
    launches the first batch."""
    env = snapshot_environment()
    captured, announce = os.pipe()  # the command says on `announce` once it recorded the tree
    argv = [
        *snapshot_command(env), *settings.options(), "--handoff", own_handoff().token,
        "--captured-fd", str(announce),
    ]  # fmt: skip
    try:
        proc = subprocess.Popen(
            argv, cwd=launch_dir, env=env, text=True, **OWN_GROUP, pass_fds=(announce,),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
    except OSError as exc:
        os.close(captured)
        raise GitSlurmError(f"cannot run git slurm-snapshot: {exc}") from exc
    finally:
        os.close(announce)  # the child's copy is the only one left: its exit closes it
    return PendingSnapshot(proc, captured, launch_dir, time.monotonic())


class PendingSnapshot:
    """A `git slurm-snapshot --json` that runs while the launch goes on: wait until it has
    recorded the tree (`wait_captured`), take its result (`result`), or, when no launch comes,
    undo it (`abandon`)."""

    def __init__(
        self, proc: subprocess.Popen[str], captured: int, launch_dir: Path, started: float
    ) -> None:
        self._proc = proc
        self._captured: Optional[int] = captured
        self._launch_dir = launch_dir
        self._started = started
        self.waited = 0.0  # seconds `result` blocked the launch: the snapshot's share of it
        self.announced = False  # the command said it recorded the tree

    def wait_captured(self) -> bool:
        """Return once the command has recorded the working tree (True: edits made from then
        on are not in the snapshot), or has ended without (False: `result` says why)."""
        if self._captured is None:
            return self.announced
        deadline = time.monotonic() + SNAPSHOT_TIMEOUT
        try:
            # a short select, then a look whether the command ended: that closes the pipe, but
            # only once every process holding it did, and git may leave one behind
            while True:
                if select.select([self._captured], [], [], CAPTURE_POLL)[0]:
                    self.announced = os.read(self._captured, 64) == b"captured\n"  # or EOF
                    break
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    break
        finally:
            self._close_captured()
        return self.announced

    def result(self) -> LaunchSnapshot:
        """Wait for the command to end: its snapshot, or a GitSlurmError with its error line."""
        self.wait_captured()
        asked = time.monotonic()
        try:
            out, err = self._proc.communicate(timeout=SNAPSHOT_TIMEOUT)
        except BaseException as exc:
            kill_tree(self._proc)  # `git` alone: the snapshot it runs would carry on without us
            if isinstance(exc, subprocess.TimeoutExpired):
                raise GitSlurmError(f"cannot run git slurm-snapshot: {exc}") from exc
            raise
        self.waited = time.monotonic() - asked
        if self._proc.returncode != 0:
            raise GitSlurmError(error_line(err, self._proc.returncode))
        try:
            data = json.loads(out)
        except ValueError as exc:
            raise GitSlurmError(f"git slurm-snapshot printed no JSON: {out[:200]!r}") from exc
        seconds = float(data.get("seconds") or time.monotonic() - self._started)
        return LaunchSnapshot.from_json(data, self._launch_dir, seconds)

    def abandon(self) -> None:
        """Undo the snapshot, made or being made, for a launch that never came. A command still
        running gets `FINISH_WAIT` to finish (the worktree it makes in the meantime is undone
        here, in full), then is asked to end (SIGTERM: it undoes its own work). Best effort,
        never raises: what a failure leaves behind has no job recorded, so gc reclaims it."""
        self._close_captured()
        try:
            out, _ = self._proc.communicate(timeout=FINISH_WAIT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                out, _ = self._proc.communicate(timeout=TERM_GRACE)
            except subprocess.TimeoutExpired:
                kill_tree(self._proc)
                return
        # the printed object, not the exit status: `git` ended by our SIGTERM just after the
        # snapshot finished reports the signal, and the branch is there all the same
        with contextlib.suppress(GitSlurmError, OSError, ValueError, KeyError, TypeError):
            abandon_snapshot(LaunchSnapshot.from_json(json.loads(out), self._launch_dir, 0.0))

    def _close_captured(self) -> None:
        if self._captured is not None:
            os.close(self._captured)
            self._captured = None


def abandon_snapshot(snapshot: LaunchSnapshot) -> None:
    """Undo a finished snapshot that no launch used: its launch leaves the worktree's record
    and the worktree goes unless another launch reused it meanwhile (both under the lock that
    reuse takes); then the branch goes, on the remote it was pushed to and here, each only
    while it still points at the snapshot's commit. The worktree is detached: no other
    worktree ever has the branch checked out."""
    # imported here: only this rare path needs them
    from git_slurm.branches import delete_snapshot_branch
    from git_slurm.names import BranchName, Oid
    from git_slurm.push import unpush
    from git_slurm.records import admin_dir_of, read_record, repository_lock, write_record
    from git_slurm.repo import discover
    from git_slurm.worktrees import remove_worktree

    checkout = discover(snapshot.origin)
    admin = admin_dir_of(snapshot.worktree)
    if admin is not None:
        with repository_lock(checkout.common_dir):
            record = read_record(admin)
            if record is not None:
                record.launches = [x for x in record.launches if x.branch != snapshot.branch]
                if record.launches or record.jobs:
                    write_record(admin, record)
                else:
                    remove_worktree(checkout.git, snapshot.worktree)
    branch = BranchName(snapshot.branch)
    if snapshot.pushed:
        unpush(checkout.git, branch, snapshot.pushed, snapshot.commit)
    delete_snapshot_branch(checkout.git, branch, Oid(snapshot.commit))


def own_handoff() -> Handoff:
    """This process, which records the jobs of the snapshot it asks for: while it lives,
    `git slurm-gc` keeps the snapshot's worktree although no job is recorded yet."""
    from git_slurm.jobstate import process_start_ticks  # see job_ref

    pid = os.getpid()
    return Handoff(socket.gethostname(), pid, process_start_ticks(pid) or 0)


def job_ref(
    job_id: str, kind: str, launch: Optional[str] = None, cluster: Optional[str] = None
) -> JobRef:
    """The record of one submitted job: a SLURM job id (on `cluster`, as sbatch named it; None:
    as the id or SLURM_CLUSTERS says), or a local job's process id."""
    if kind == "local":
        # imported here: jobstate brings plumbum, which the launcher's other paths don't need
        from git_slurm.jobstate import process_start_ticks

        ticks = process_start_ticks(int(job_id))
        return JobRef(id=job_id, kind=kind, start_ticks=ticks, launch=launch)
    bare, _, in_id = job_id.partition(";")  # `sbatch --parsable -M c` prints `id;c`
    return JobRef(id=bare, kind=kind, launch=launch, cluster=cluster or in_id or submit_cluster())


def submit_cluster() -> Optional[str]:
    """The cluster sbatch submits to when SLURM_CLUSTERS names one, as it does for `-M`
    (None: the default cluster). gc asks that cluster, whatever its own environment says."""
    names = os.environ.get("SLURM_CLUSTERS", "").strip()
    return names if names and "," not in names and names != "all" else None


def record_jobs(
    snapshot: LaunchSnapshot, job_ids: Sequence[str], kind: str, cluster: Optional[str] = None
) -> SnapshotRecord:
    """Remember with the snapshot worktree which jobs run from it (for gc and for the user);
    `cluster`: the one sbatch said it submitted them to."""
    refs = [job_ref(job_id, kind, snapshot.branch, cluster) for job_id in job_ids]
    return add_jobs(snapshot.worktree, refs)
