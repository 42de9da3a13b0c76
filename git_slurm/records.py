"""What git-slurm remembers about each snapshot worktree, kept in the worktree's admin dir.

The record (`<common dir>/worktrees/<id>/git-slurm.json`) is how git-slurm recognises its own
worktrees (never by name), which launches and jobs use them, and when they were last used.
Writers take `repository_lock` so that a snapshot reusing a worktree and `git slurm-gc`
removing it can never interleave.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from git_slurm.errors import UsageError
from git_slurm.gitcli import read_git_file, write_git_file

RECORD_NAME = "git-slurm.json"
LOCK_NAME = "git-slurm.lock"
LOCK_REASON_MARK = "git-slurm snapshot"
BEING_MADE = "(being made)"
FORMAT_VERSION = 1
# Each grace period of `git slurm-gc` has one meaning. Where a process can be asked (same
# host), gc asks it instead of waiting; these bound what cannot be asked:
# a worktree locked as being made on another host, whose admin dir changed within this time
MAKING_GRACE = 15 * 60.0
# a launch handed to a launcher on another host that has not recorded its jobs yet
HANDOFF_GRACE = 15 * 60.0
# a private index copy or half-written record that a capture may still be using
TEMP_FILE_GRACE = 15 * 60.0


JobKey = tuple[str, str, str, str]  # (kind, host, cluster, id): see JobRef.key


@dataclass(frozen=True)
class JobRef:
    """A job that runs from a snapshot worktree."""

    id: str  # SLURM job id ("1234", "1234_7") or, for the local executor, the process id
    kind: str  # "slurm" or "local"
    host: str = field(default_factory=socket.gethostname)
    submitted: float = field(default_factory=time.time)
    start_ticks: Optional[int] = None  # local jobs: /proc/PID/stat start time, against PID reuse
    launch: Optional[str] = None  # branch of the launch that submitted it (None: older record)
    cluster: Optional[str] = None  # SLURM jobs: the cluster (`-M`) it runs on; None: default

    @property
    def key(self) -> JobKey:
        """What names one job: a SLURM id within its cluster, from whatever host it was
        submitted; a process id on its own host."""
        host = self.host if self.kind != "slurm" else ""
        return (self.kind, host, self.cluster or "", self.id)


@dataclass(frozen=True)
class Launch:
    """One `git slurm-snapshot` that made or reused the worktree."""

    branch: str
    commit: str
    time: float
    # `Handoff.token` of the process that will record this launch's jobs (the launcher's);
    # None: a snapshot made by hand, whose jobs (if any) nobody is about to record
    handoff: Optional[str] = None


@dataclass(frozen=True)
class Handoff:
    """Which process will record a launch's jobs: `host:pid:start_ticks`, so that gc can tell
    whether it still lives (the pid alone could be a later process's)."""

    host: str
    pid: int
    start_ticks: int

    @property
    def token(self) -> str:
        return f"{self.host}:{self.pid}:{self.start_ticks}"

    @classmethod
    def parse(cls, token: str) -> Handoff:
        """Raises ValueError for anything but `host:pid:start_ticks`."""
        host, pid, ticks = token.rsplit(":", 2)
        if not host or not pid.isdigit() or not ticks.isdigit() or int(pid) <= 0:
            raise ValueError(token)
        return cls(host, int(pid), int(ticks))


@dataclass
class SnapshotRecord:
    """Everything git-slurm knows about one snapshot worktree."""

    worktree: str
    origin: str  # the original checkout whose paths the links point to
    tree: str
    base: Optional[str]
    links: list[str]
    created: float
    last_used: float
    launches: list[Launch] = field(default_factory=list)
    jobs: list[JobRef] = field(default_factory=list)
    version: int = FORMAT_VERSION
    # False once its files were found to differ from its commit (a job edited one): from then
    # on no new snapshot hard-links them (see materialize.py)
    shareable: bool = True
    # the submodule worktrees checked out inside it (relative paths, nested ones too); None
    # when submodules were not asked for (they are then empty directories)
    submodules: Optional[list[str]] = None

    @property
    def branches(self) -> list[str]:
        return [launch.branch for launch in self.launches]

    def to_json(self) -> dict[str, Any]:
        """What `asdict` makes, without its deep copy of every launch and job: a record
        grows with both, and each reuse writes it."""
        data = dict(vars(self))
        data["links"] = list(self.links)
        data["launches"] = [dict(vars(launch)) for launch in self.launches]
        data["jobs"] = [dict(vars(job)) for job in self.jobs]
        if self.submodules is not None:
            data["submodules"] = list(self.submodules)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SnapshotRecord:
        fields = dict(data)
        fields["launches"] = [Launch(**x) for x in data.get("launches", [])]
        fields["jobs"] = [JobRef(**x) for x in data.get("jobs", [])]
        return cls(**fields)


def checked_handoff(token: str) -> str:
    """`token` when it is a `Handoff.token`; else the user's error."""
    try:
        return Handoff.parse(token).token
    except ValueError:
        raise UsageError(f"bad --handoff {token!r}: expected HOST:PID:START") from None


def admin_dir_of(worktree: Path) -> Optional[Path]:
    """The admin dir (`.../worktrees/<id>`) of a linked worktree, from its `.git` file."""
    try:
        text = read_git_file(worktree / ".git")
    except OSError:
        return None
    if not text.startswith("gitdir: "):
        return None
    return (worktree / text[len("gitdir: ") :].strip()).resolve()


def read_record(admin_dir: Path) -> Optional[SnapshotRecord]:
    """The record in an admin dir, or None when the worktree is not one of ours."""
    try:
        data = json.loads((admin_dir / RECORD_NAME).read_text(encoding="utf-8"))
        return SnapshotRecord.from_json(data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def write_record(admin_dir: Path, record: SnapshotRecord) -> None:
    """Replace the record atomically, so a reader never sees half of it; renew our lock
    reason, never one the user gave (`user_lock`)."""
    replace_json(admin_dir / RECORD_NAME, record.to_json(), indent=None)
    if user_lock(admin_dir) is None:
        write_git_file(admin_dir / "locked", lock_reason(record))


def replace_json(path: Path, data: dict[str, Any], *, indent: Optional[int]) -> None:
    """Replace `path` by `data` as JSON atomically: a reader (a hook, a gc) sees the old or
    the new, never half. Written beside it as `<name>.<pid>.tmp` first, which is the name
    `git slurm-gc` sweeps when a killed writer left one behind. `indent=None` writes one line
    with json's C encoder (an indent takes the pure-Python one, ~10x slower): for records,
    which grow with every launch."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=indent) + "\n", encoding="utf-8")
    tmp.replace(path)


def lock_text(admin_dir: Path) -> Optional[str]:
    """The reason of `git worktree lock` (empty when none was given); None: not locked."""
    try:
        return read_git_file(admin_dir / "locked")
    except OSError:
        return None


def user_lock(admin_dir: Path) -> Optional[str]:
    """The reason of a lock that is not git-slurm's (`git worktree lock [--reason]` by the
    user): whoever locked it wants it kept, and git-slurm never re-locks, reuses or removes
    it. None when it is unlocked or locked by git-slurm."""
    reason = lock_text(admin_dir)
    if reason is None or reason.startswith(LOCK_REASON_MARK):
        return None
    return reason.strip() or "no reason given"


def making_reason(branch: str) -> str:
    """The lock reason of a worktree from `git worktree add` until its record is written:
    whose it is, and on which host it is being made (`git slurm-gc` reads both back)."""
    return f"{LOCK_REASON_MARK} {branch} on {socket.gethostname()} {BEING_MADE}"


def making_branch_and_host(reason: str) -> Optional[tuple[str, Optional[str]]]:
    """(branch, host) of a `making_reason`; host None when the reason does not name one (an
    older git-slurm's); None when the reason is not one of a worktree being made."""
    text = reason.strip()
    if not (text.startswith(f"{LOCK_REASON_MARK} ") and text.endswith(f" {BEING_MADE}")):
        return None
    words = text[len(LOCK_REASON_MARK) : -len(BEING_MADE)].split()
    if len(words) == 3 and words[1] == "on":
        return words[0], words[2]
    return (words[0], None) if len(words) == 1 else None


def lock_reason(record: SnapshotRecord) -> str:
    """What `git worktree list` shows after `locked`: whose snapshot it is, and its jobs."""
    jobs = ",".join(j.id for j in record.jobs[-5:]) or "none yet"
    more = f" (+{len(record.jobs) - 5})" if len(record.jobs) > 5 else ""
    return f"{LOCK_REASON_MARK} {record.branches[-1]} of {record.origin}; jobs: {jobs}{more}"


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def repository_lock(common_dir: Path) -> contextlib.AbstractContextManager[None]:
    """Serialise git-slurm's record changes and removals within one repository."""
    return _flock(common_dir / LOCK_NAME)


def tree_lock(common_dir: Path, tree: str) -> contextlib.AbstractContextManager[None]:
    """Serialise snapshots of one tree, so concurrent launches of it share one worktree.

    Held while a snapshot reuses or makes a worktree, until its record is written: so it
    also tells `git slurm-gc` whether a worktree being made still has a maker
    (`tree_lock_is_free`). 256 buckets by the tree id's first byte: few lock files, and
    different trees rarely wait.
    """
    locks = common_dir / "git-slurm-locks"
    locks.mkdir(exist_ok=True)
    return _flock(locks / f"{tree[:2]}.lock")


def tree_lock_is_free(common_dir: Path, tree: str) -> Optional[bool]:
    """Does no process hold `tree_lock` for `tree` right now?

    A snapshot holds it from before `git worktree add` until the record is written (or the
    half-made worktree is removed again), and the kernel drops a flock when its holder dies:
    so a worktree still locked as being made whose tree lock is free was abandoned by a
    process that died. (Held: some snapshot of a tree in the same bucket runs, maybe this one.)
    None: cannot tell.
    """
    path = common_dir / "git-slurm-locks" / f"{tree[:2]}.lock"
    try:  # read-only: flock needs no more, and a probe creates nothing
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True  # never taken
    except OSError:
        return None  # cannot tell (another user's lock file): the caller waits instead
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def restore_lock(admin_dir: Path) -> contextlib.AbstractContextManager[None]:
    """Serialise the jobs of one worktree that restore its files (verify.py): an array's
    jobs start at once, and git's index lock would fail all but one."""
    return _flock(admin_dir / "git-slurm-restore.lock")


def creation_lock(common_dir: Path) -> contextlib.AbstractContextManager[None]:
    """Serialise git-slurm's `git worktree add` within one repository: while git adds a
    worktree it reads every other worktree's admin dir, and fails on one half made."""
    locks = common_dir / "git-slurm-locks"
    locks.mkdir(exist_ok=True)
    return _flock(locks / "worktree-add.lock")


def snapshot_worktrees(common_dir: Path) -> list[tuple[Path, SnapshotRecord]]:
    """(admin dir, record) of every recorded snapshot worktree: `snapshotworktrees.recorded`
    as pairs, for the callers that hold a record under `repository_lock` and rewrite it."""
    from git_slurm.snapshotworktrees import recorded  # which imports this module

    return [(found.admin, found.record) for found in recorded(common_dir) if found.record]


def add_jobs(worktree: Path, jobs: Sequence[JobRef]) -> SnapshotRecord:
    """Record that `jobs` run from the snapshot worktree `worktree` (used by the launcher)."""
    admin = admin_dir_of(worktree)
    if admin is None:
        raise FileNotFoundError(f"{worktree} is not a git worktree")
    common_dir = admin.parent.parent
    with repository_lock(common_dir):
        record = read_record(admin)
        if record is None:
            raise FileNotFoundError(f"{worktree} is not a git-slurm snapshot worktree")
        record.jobs.extend(jobs)
        record.last_used = time.time()
        write_record(admin, record)
        return record
