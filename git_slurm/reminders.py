"""What the post-checkout reminder has to say: stale snapshot worktrees, live jobs, and whether
the branch just checked out is a snapshot branch.

A hook has about 150 ms and must never wait for SLURM or walk 50 checkouts, so job states and
worktree sizes come from a cache in the common git dir. When the cache is older than
`REFRESH_AFTER`, the hook starts `refresh_cache` in a detached process and answers from what
the cache already holds: the numbers may lag by one refresh; the checkout never waits, however
slow or absent the SLURM controller. A job state that is final stays in the cache, so once
every job has ended SLURM is not asked again.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from git_slurm import config
from git_slurm.branches import SNAPSHOT_REFLOG_MARK
from git_slurm.diskusage import Scan
from git_slurm.gitcli import Git
from git_slurm.jobstate import UNKNOWN, Workdirs, survey_jobs
from git_slurm.records import JobRef, SnapshotRecord, replace_json
from git_slurm.repo import Checkout
from git_slurm.snapshotworktrees import records_of

CACHE_NAME = "git-slurm-reminders.json"
REFRESH_LOCK_NAME = "git-slurm-reminders.lock"
REFRESH_AFTER = 120.0  # seconds; also the most often SLURM is asked on behalf of the hook
SIZE_MAX_AGE = 24 * 3600.0  # a stale worktree hardly changes: measuring it daily is plenty
QUERY_TIMEOUT = 30.0  # the background SLURM query's bound; nobody waits for it
# The reflog message snapshot.take_snapshot gives a snapshot branch at its creation; it still
# tells a snapshot branch after `git slurm-gc` has removed the worktree and its record.
# A bisect or rebase checks out commit after commit: no moment for a reminder.
BUSY_MARKERS = ("BISECT_START", "rebase-merge", "rebase-apply")


@dataclass(frozen=True)
class CachedJob:
    state: str
    live: bool


@dataclass(frozen=True)
class CachedSize:
    bytes: int
    measured: float


@dataclass
class Cache:
    """Job states and worktree sizes, as of the last background refresh."""

    checked: float = 0.0  # when the last refresh ended
    jobs: dict[str, CachedJob] = field(default_factory=dict)  # job_key -> state
    sizes: dict[str, CachedSize] = field(default_factory=dict)  # worktree path -> size
    # working dirs of the user's live SLURM jobs (recorded or not); None: could not be listed
    workdirs: Optional[list[str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cache:
        return cls(
            checked=float(data.get("checked", 0.0)),
            jobs={k: CachedJob(**v) for k, v in data.get("jobs", {}).items()},
            sizes={k: CachedSize(**v) for k, v in data.get("sizes", {}).items()},
            workdirs=data.get("workdirs", []),
        )


@dataclass(frozen=True)
class Stale:
    """Snapshot worktrees that `git slurm-gc --older-than <older_than>` would remove (unless
    a job wrote files into one: finding out takes a `git status` each, too slow here)."""

    count: int
    bytes: int  # disk held by those whose size has been measured
    unmeasured: int  # how many of them have no size in the cache yet
    older_than: str


@dataclass(frozen=True)
class Reminder:
    """Everything the hook may say after one branch checkout."""

    stale: Stale
    live_jobs: int  # jobs from snapshot worktrees known to be pending or running
    unknown_jobs: int  # and those whose state could not be read (SLURM down, another host)
    jobs_checked: Optional[float]  # when those job states were read; None: never
    snapshot_branch: Optional[str]  # the branch just checked out, when it is a snapshot's
    stale_before: float  # last_used before this time is stale (for the refresh)
    refresh_needed: bool  # the cache is old and has something to learn


def gather(checkout: Checkout, now: Optional[float] = None) -> Optional[Reminder]:
    """The reminder for `checkout` right after a branch checkout; None when switched off or
    in the middle of a bisect or rebase."""
    if busy(checkout.git_dir):
        return None
    settings = config.SlurmConfig(checkout.git)
    if not settings.reminders_enabled():
        return None
    now = time.time() if now is None else now
    older_than, seconds = settings.gc_older_than(now)
    stale_before = now - seconds
    records = records_of(checkout.common_dir)
    cache = read_cache(checkout.common_dir)
    live, unknown = count_live_jobs(records, cache)
    return Reminder(
        stale=summarise(stale_worktrees(records, cache, stale_before), cache, older_than),
        live_jobs=live,
        unknown_jobs=unknown,
        jobs_checked=cache.checked or None,
        snapshot_branch=snapshot_branch_checked_out(checkout.git, records),
        stale_before=stale_before,
        refresh_needed=refresh_needed(records, cache, stale_before, now),
    )


def busy(git_dir: Path) -> bool:
    return any((git_dir / marker).exists() for marker in BUSY_MARKERS)


def job_key(job: JobRef) -> str:
    """`JobRef.key` as text (a JSON object's key)."""
    return ":".join(job.key)


def all_jobs(records: list[SnapshotRecord]) -> list[JobRef]:
    return [job for record in records for job in record.jobs]


def count_live_jobs(records: list[SnapshotRecord], cache: Cache) -> tuple[int, int]:
    """(known to be pending or running, of unknown state) among the jobs last asked about."""
    live = [cache.jobs[job_key(job)] for job in all_jobs(records) if is_live(cache, job)]
    unknown = sum(1 for job in live if job.state == UNKNOWN)
    return len(live) - unknown, unknown


def is_live(cache: Cache, job: JobRef) -> bool:
    known = cache.jobs.get(job_key(job))
    return known is not None and known.live


def is_open(cache: Cache, job: JobRef) -> bool:
    """Not known to have ended: never asked yet, or live when last asked."""
    known = cache.jobs.get(job_key(job))
    return known is None or known.live


def stale_worktrees(
    records: list[SnapshotRecord], cache: Cache, stale_before: float
) -> list[SnapshotRecord]:
    """Unused since `stale_before`, every job known to have ended, and no live SLURM job
    working in it (what gc removes)."""
    if cache.workdirs is None:
        return []  # any of them may be some job's working directory
    workdirs = Workdirs(cache.workdirs)
    return [
        record
        for record in records
        if record.last_used < stale_before
        and not any(is_open(cache, j) for j in record.jobs)
        and not workdirs.inside(Path(record.worktree))
    ]


def summarise(stale: list[SnapshotRecord], cache: Cache, older_than: str) -> Stale:
    sizes = [cache.sizes.get(record.worktree) for record in stale]
    known = [size.bytes for size in sizes if size is not None]
    return Stale(len(stale), sum(known), len(stale) - len(known), older_than)


def refresh_needed(
    records: list[SnapshotRecord], cache: Cache, stale_before: float, now: float
) -> bool:
    if now - cache.checked < REFRESH_AFTER:
        return False
    if any(is_open(cache, job) for job in all_jobs(records)):
        return True
    # an old worktree may be a hand-submitted job's working dir (SLURM's list says), and
    # its size may be due
    return bool(old_worktrees(records, stale_before))


def old_worktrees(records: list[SnapshotRecord], stale_before: float) -> list[SnapshotRecord]:
    return [record for record in records if record.last_used < stale_before]


def size_due(cache: Cache, record: SnapshotRecord, now: float) -> bool:
    size = cache.sizes.get(record.worktree)
    return size is None or now - size.measured > SIZE_MAX_AGE


def snapshot_branch_checked_out(git: Git, records: list[SnapshotRecord]) -> Optional[str]:
    """The current branch when git-slurm made it: by its records, else by its first reflog
    entry. Never by its name: a user's own branch may look like `slurm-job-...`."""
    # not --short: a tag of the same name would make it `heads/<branch>`
    rc, out, _ = git.run("symbolic-ref", "--quiet", "HEAD", check=False)
    branch = out.strip().removeprefix("refs/heads/")
    if rc != 0 or not branch:
        return None  # detached HEAD
    if any(branch in record.branches for record in records):
        return branch
    rc, out, _ = git.run("log", "-g", "--format=%gs", f"refs/heads/{branch}", "--", check=False)
    entries = out.splitlines()
    made_by_us = rc == 0 and bool(entries) and entries[-1].startswith(SNAPSHOT_REFLOG_MARK)
    return branch if made_by_us else None


def read_cache(common_dir: Path) -> Cache:
    """The cache, or an empty one when it is missing or unreadable (it is only a cache)."""
    try:
        data = json.loads((common_dir / CACHE_NAME).read_text(encoding="utf-8"))
        return Cache.from_json(data)
    except (OSError, ValueError, TypeError, AttributeError):
        return Cache()


def write_cache(common_dir: Path, cache: Cache) -> None:
    """Replace the cache atomically: a hook may read it at any moment."""
    replace_json(common_dir / CACHE_NAME, cache.to_json(), indent=1)


def forget_cache(common_dir: Path) -> None:
    """Remove the cache and its lock (when the hook is uninstalled)."""
    for name in (CACHE_NAME, REFRESH_LOCK_NAME):
        (common_dir / name).unlink(missing_ok=True)


def refresh_lock(common_dir: Path) -> Optional[int]:
    """A file descriptor holding the refresh lock, or None when a refresh already runs.

    The lock lives as long as any copy of the descriptor: the hook hands it to the detached
    refresh process, so one refresh runs at a time and the lock ends when that process does.
    """
    try:  # a repository the user may read but not write gets no refresh, not an error
        fd = os.open(common_dir / REFRESH_LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def refresh_cache(common_dir: Path, stale_before: float, now: Optional[float] = None) -> Cache:
    """Ask for the states of open jobs and measure old worktrees; write and return the cache.

    Slow by nature (SLURM, disk walks): run it detached, holding `refresh_lock`.
    """
    now = time.time() if now is None else now
    records = records_of(common_dir)
    cache = read_cache(common_dir)
    jobs, workdirs = query_jobs([j for j in all_jobs(records) if is_open(cache, j)])
    cache.jobs.update(jobs)
    cache.workdirs = workdirs
    scan = Scan()  # snapshots share most files: each is stat'ed once, not once per worktree
    for record in old_worktrees(records, stale_before):
        if size_due(cache, record, now):
            # each file shared by hard links counts by its share: summed over the stale
            # worktrees, about what gc frees when it removes them all
            usage = scan.usage(Path(record.worktree))
            cache.sizes[record.worktree] = CachedSize(usage.fair_share, now)
    forget_the_gone(cache, records)
    cache.checked = time.time()
    write_cache(common_dir, cache)
    return cache


def query_jobs(jobs: list[JobRef]) -> tuple[dict[str, CachedJob], Optional[list[str]]]:
    """Current states of `jobs`, and the working dirs of the user's live SLURM jobs (None:
    not listed); no states when the query fails (retried later)."""
    try:
        found = survey_jobs(jobs, QUERY_TIMEOUT)
    except Exception:  # a background refresh has nobody to tell; the next one tries again
        return {}, None
    states = {
        job_key(job): CachedJob(found.statuses[job.key].state, found.statuses[job.key].live)
        for job in jobs
        if job.key in found.statuses
    }
    return states, None if found.unlisted is not None else found.live_workdirs


def forget_the_gone(cache: Cache, records: list[SnapshotRecord]) -> None:
    """Drop entries of jobs and worktrees no record has any more (removed by gc)."""
    keys = {job_key(job) for job in all_jobs(records)}
    worktrees = {record.worktree for record in records}
    cache.jobs = {k: v for k, v in cache.jobs.items() if k in keys}
    cache.sizes = {k: v for k, v in cache.sizes.items() if k in worktrees}
