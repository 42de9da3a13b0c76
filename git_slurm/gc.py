"""`git slurm-gc`: remove stale snapshot worktrees without hurting a job or losing a file.

A worktree is removed only when every rule lets it go:

1. git-slurm made it: its admin dir holds our record, or it is a half-made snapshot: our
   "being made" lock reason and no record. One made on this host goes at once when no
   process holds its tree's `tree_lock` (its maker held it throughout, and the kernel drops
   a dead process's flock), and stays while one does; one made elsewhere goes once untouched
   for `MAKING_GRACE` and `older_than`. A lock with someone else's reason means "keep it".
2. It was last used more than `older_than` ago (a reused worktree is young again), and a launch
   is not between making the snapshot and recording its jobs: its launcher still lives
   (`--handoff`; from another host: for `HANDOFF_GRACE`). A snapshot made by hand has no
   hand-off.
3. None of its recorded jobs is live (`jobstate`: pending, running, requeued, unknown ...).
4. It holds no file a job wrote, unless `force`: everything `git status` shows besides the
   snapshot's own links would be lost with it. (A half-made snapshot never had a job: its
   path is printed only once its record is written.)

Besides worktrees, gc removes what a killed capture leaves in a git dir: its private index
copy (`git-slurm-index.*`) and a record being replaced, once older than `TEMP_FILE_GRACE`.

Rules 1-2 are read without a lock and the jobs asked for in one batch; rule 4 and the removal
run under `repository_lock`, after checking that the record did not change meanwhile, so a
snapshot reusing the worktree (which bumps `last_used` under the same lock) never interleaves.
A dry run removes nothing: it reads rule 4 of all due worktrees at once, by several git
processes side by side.

What it costs follows the worktrees that are due, not all of them: one kept for its record
alone (age, hand-off, lock) costs a few file reads; a due one a `git status` and a read of
its directories, each inode stat'ed once per run however many snapshots hard-link it
(`diskusage.Scan`). benchmarks/gc_bench.py measures it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Optional, Union

from git_slurm import config, gcbranches, submodules
from git_slurm.age import format_age as _ago
from git_slurm.diskusage import Scan, Usage, freed
from git_slurm.errors import GitSlurmError, UsageError, last_line
from git_slurm.gitcli import Git, read_git_file
from git_slurm.jobstate import JobStatus, Survey, local_state, survey_jobs
from git_slurm.records import (
    HANDOFF_GRACE,
    MAKING_GRACE,
    RECORD_NAME,
    TEMP_FILE_GRACE,
    Handoff,
    JobKey,
    JobRef,
    Launch,
    SnapshotRecord,
    admin_dir_of,
    read_record,
    repository_lock,
    tree_lock_is_free,
)
from git_slurm.repo import Checkout
from git_slurm.snapshotworktrees import SnapshotWorktree, find_all, making_of
from git_slurm.worktrees import DEFAULT_DIR_NAME, prune_only

JOB_QUERY_TIMEOUT = 10.0
MAX_LISTED_FILES = 1000  # job-written paths kept in a report (the count is always exact)

REMOVED, PRUNED, KEPT = "removed", "pruned", "kept"


@dataclass(frozen=True)
class JobReport:
    id: str
    kind: str
    host: str
    cluster: Optional[str]
    launch: Optional[str]  # the branch of the launch that submitted it
    state: str
    live: bool
    detail: str


@dataclass
class WorktreeReport:
    """What gc did with one snapshot worktree, and why."""

    path: str
    id: str  # the admin dir's name under <common dir>/worktrees/
    branches: list[str]
    last_used: Optional[float]  # None: a half-made snapshot without record
    action: str  # removed | pruned | kept (with dry_run: what would happen)
    reason: str  # unused | abandoned | vanished | younger | in-use | current | locked | live-job
    # | job-files | failed
    detail: str  # the reason for a person
    jobs: list[JobReport] = field(default_factory=list)
    job_files: list[str] = field(default_factory=list)  # at most MAX_LISTED_FILES
    job_files_count: int = 0
    freed_bytes: int = 0  # blocks only this worktree held (files shared with others: below)
    shared_files: int = 0  # its files with hard links elsewhere (other snapshots, mostly)
    usage: Usage = field(default_factory=Usage, repr=False, compare=False)  # not in JSON


@dataclass(frozen=True)
class GcOptions:
    """What one `git slurm-gc` run is asked to do."""

    older_than: float  # seconds: worktrees unused for longer than this go
    now: float  # the time ages are measured from
    force: bool = False  # also remove worktrees that hold job-written files
    dry_run: bool = False  # report, remove nothing
    branches: bool = False  # also delete the snapshot branches older than `older_than`
    remote: Optional[str] = None  # with `branches`: on this remote too

    def to_json(self) -> dict[str, Any]:
        """What a report says it was asked (its JSON's `branches` is the branches' report)."""
        return {key: getattr(self, key) for key in ("dry_run", "force", "older_than", "now")}


@dataclass
class GcReport:
    """Everything one `git slurm-gc` run did (or, with dry_run, would do)."""

    worktrees: list[WorktreeReport] = field(default_factory=list)
    branches: list[gcbranches.BranchReport] = field(default_factory=list)
    # leftovers of killed snapshots in git dirs (index copies, records being replaced)
    temp_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, action: str) -> int:
        return sum(1 for w in self.worktrees if w.action == action)

    def freed(self) -> tuple[int, int]:
        """(bytes freed, hard-linked files whose data stays because a link is left elsewhere):
        a file shared by removed snapshots counts once, when its last link went."""
        return freed(w.usage for w in self.worktrees if w.action != KEPT)

    def to_json(self, options: GcOptions) -> dict[str, Any]:
        # asdict deep-copies: each worktree's Usage (an entry per hard-linked file, tens of
        # thousands in a big repository) goes before it, not after
        data = {**options.to_json(), **asdict(replace(self, worktrees=[]))}
        data["worktrees"] = [_public(w) for w in self.worktrees]
        freed_bytes, still_linked = self.freed()
        data.update(
            removed=self.count(REMOVED),
            pruned=self.count(PRUNED),
            kept=self.count(KEPT),
            freed_bytes=freed_bytes,
            freed_is_lower_bound=still_linked > 0,
            seconds=round(self.seconds, 3),
        )
        return data


def _public(worktree: WorktreeReport) -> dict[str, Any]:
    data = asdict(replace(worktree, usage=Usage()))
    del data["usage"]
    return data


def collect(checkout: Checkout, options: GcOptions) -> GcReport:
    """Remove (or with `dry_run` only report) the snapshot worktrees nothing needs any more."""
    started = time.monotonic()
    if options.older_than < 0:
        raise UsageError("the age must not be negative")
    if options.remote is not None:
        gcbranches.check_remote(checkout.git, options.remote, options.branches)
    report = GcReport()
    search = [
        checkout.common_dir / DEFAULT_DIR_NAME,
        config.SlurmConfig(checkout.git).worktree_dir(checkout),
    ]
    candidates = find_all(checkout.common_dir, search)
    due = survey(report, candidates, checkout, options)
    # nothing due: SLURM is not asked at all
    jobs = survey_jobs(_jobs_of(due), JOB_QUERY_TIMEOUT) if due else Survey(statuses={})
    settle_all(report, checkout, due, jobs, options)
    report.temp_files = sweep_temp_files(checkout.common_dir, options.now, options.dry_run)
    if options.branches:
        known = [c.record for c in candidates if c.record is not None]
        gone = {w.id for w in report.worktrees if w.action != KEPT}
        report.branches = gcbranches.collect_branches(
            checkout, known, gone, older_than=options.older_than, now=options.now,
            dry_run=options.dry_run, remote=options.remote,
        )  # fmt: skip
    report.warnings.extend(w.detail for w in report.worktrees if w.reason == "failed")
    report.warnings.extend(b.warning for b in report.branches if b.warning)
    report.worktrees.sort(key=lambda w: w.path)
    report.seconds = time.monotonic() - started
    return report


def survey(
    report: GcReport, candidates: list[SnapshotWorktree], checkout: Checkout, options: GcOptions
) -> list[SnapshotWorktree]:
    """Report those kept for their age or use alone; return the others, due for a closer look."""
    due = []
    for candidate in candidates:
        kept = precheck(candidate, checkout, options.older_than, options.now)
        if kept is not None:
            report.worktrees.append(kept)
        else:
            due.append(candidate)
    return due


def settle_all(
    report: GcReport,
    checkout: Checkout,
    due: list[SnapshotWorktree],
    jobs: Survey,
    options: GcOptions,
) -> None:
    """Decide on (and unless dry_run remove) every due worktree, then prune the vanished."""
    # Measured before anything goes: snapshots hard-link the files they share, and a link
    # count read after a sibling's removal would make the shared data look like this one's.
    # A dry run removes nothing, so it need not look at each worktree under the lock, just
    # before removing it: git statuses of them all run meanwhile (most of its time).
    with LookAhead(due if options.dry_run else [], jobs) as ahead:
        scan = Scan()
        usages = {c.id: measure(c, scan) for c in due if not _live_jobs(c, jobs.statuses)}
        looked = ahead.results()
    for candidate in due:
        outcome = settle(
            checkout, candidate, jobs, force=options.force, dry_run=options.dry_run,
            usage=usages.get(candidate.id), looked=looked.get(candidate.id),
        )  # fmt: skip
        if outcome is not None:  # None: a concurrent gc removed it meanwhile
            report.worktrees.append(outcome)
    vanished = [w for w in report.worktrees if w.action == PRUNED]
    if vanished and not options.dry_run:
        report.warnings.extend(prune_vanished(checkout, vanished))


# ---- finding our worktrees ---------------------------------------------------------------


def maker_alive(candidate: SnapshotWorktree, checkout: Checkout) -> Optional[bool]:
    """Is a process still making this half-made snapshot? None: cannot tell.

    Its maker holds the `tree_lock` of the snapshot's tree from before `git worktree add`
    until the record is written: a free lock means nobody is making it. Trusted only on the
    host that made it (flock need not reach across hosts on every shared file system).
    """
    made = candidate.making
    if made is None or made[1] != socket.gethostname():
        return None
    tree = head_tree(checkout.git, candidate.admin)
    free = None if tree is None else tree_lock_is_free(checkout.common_dir, tree)
    return None if free is None else not free


def head_tree(git: Git, admin: Path) -> Optional[str]:
    """The tree of the commit a (detached) worktree's HEAD names, if it names one."""
    try:
        head = read_git_file(admin / "HEAD").strip()
    except OSError:
        return None
    if len(head) not in (40, 64) or head.strip("0") == "":
        return None  # a symbolic ref, or git's placeholder of a worktree still being added
    rc, out, _ = git.run("rev-parse", "--verify", "--quiet", f"{head}^{{tree}}", check=False)
    return out.strip() if rc == 0 else None


# ---- the checks before the lock ----------------------------------------------------------


def precheck(
    candidate: SnapshotWorktree, checkout: Checkout, older_than: float, now: float
) -> Optional[WorktreeReport]:
    """The report of a worktree that is kept for its age or use alone; None when it is due."""
    if _same_path(candidate.path, checkout.toplevel):
        return kept(candidate, "current", "gc runs inside this worktree")
    if candidate.record is None:
        alive = maker_alive(candidate, checkout)
        if alive is None:
            return _precheck_half_made(candidate, older_than, now)
        return kept(candidate, "in-use", "a snapshot is being made") if alive else None
    foreign = candidate.user_lock()
    if foreign is not None:
        return kept(candidate, "locked", f"locked by someone else: {foreign}")
    record = candidate.record
    age = now - record.last_used
    if age <= older_than:
        return kept(
            candidate, "younger", f"last used {_ago(age)} ago, younger than {_ago(older_than)}"
        )
    handing = handing_to_jobs(record, now)
    if handing is not None:
        return kept(candidate, "in-use", handing)
    return None


def _precheck_half_made(
    candidate: SnapshotWorktree, older_than: float, now: float
) -> Optional[WorktreeReport]:
    try:
        idle = now - candidate.last_activity()
    except OSError:
        return None  # the admin dir vanished: settle() finds out under the lock
    if idle <= MAKING_GRACE:
        return kept(candidate, "in-use", f"a snapshot is being made (changed {_ago(idle)} ago)")
    if idle <= older_than:
        return kept(candidate, "younger", f"half made, younger than {_ago(older_than)}")
    return None


def handing_to_jobs(record: SnapshotRecord, now: float) -> Optional[str]:
    """Why a just-launched worktree must stay although --older-than says otherwise, if it must.

    A launch makes (or reuses) the snapshot, submits the jobs and only then records them: in
    between, no record shows that jobs are about to run here. The launcher named itself
    (`--handoff`): on this host gc asks whether that process still lives; a launcher on
    another host is waited for `HANDOFF_GRACE`. A snapshot made by hand names none.
    """
    for launch in record.launches:
        if not _recorded(record, launch):
            why = handoff_pending(launch, now)
            if why is not None:
                return f"launch {launch.branch}: {why}" if len(record.launches) > 1 else why
    return None


def handoff_pending(launch: Launch, now: float) -> Optional[str]:
    """Why the process that will record `launch`'s jobs may still do so, if it may."""
    if launch.handoff is None:
        return None
    try:
        handoff = Handoff.parse(launch.handoff)
    except ValueError:
        handoff = Handoff(f"unknown host ({launch.handoff!r})", 0, 0)
    if handoff.host == socket.gethostname():
        ref = JobRef(str(handoff.pid), "local", handoff.host, start_ticks=handoff.start_ticks)
        if local_state(ref).live:
            return f"its launcher (pid {handoff.pid}) has not recorded its jobs yet"
        return None
    since = now - launch.time
    if since <= HANDOFF_GRACE:
        return f"launched {_ago(since)} ago on {handoff.host}; its jobs may not be recorded yet"
    return None


def _recorded(record: SnapshotRecord, launch: Launch) -> bool:
    """Has `launch` recorded its jobs? Another launch's jobs, recorded later, say nothing
    about it (jobs of older records, which name no launch, count by time)."""
    return any(
        job.launch == launch.branch if job.launch else job.submitted >= launch.time
        for job in record.jobs
    )


def _jobs_of(candidates: Sequence[SnapshotWorktree]) -> list[JobRef]:
    return [job for c in candidates if c.record for job in c.record.jobs]


# ---- deciding and removing under the lock ------------------------------------------------


def settle(
    checkout: Checkout,
    candidate: SnapshotWorktree,
    survey: Survey,
    *,
    force: bool,
    dry_run: bool,
    usage: Optional[Usage] = None,
    looked: Optional[Looked] = None,
) -> Optional[WorktreeReport]:
    """Remove one due worktree, or say why not; None when it is gone already. `looked`: its
    job-written files (or why they cannot be listed) as found already."""
    jobs = _live_jobs(candidate, survey.statuses, live_only=False)
    live = [job for job in jobs if job.live]
    if live:
        return kept(candidate, "live-job", _live_detail(live), jobs=jobs)
    working = unrecorded_job_use(candidate.path, survey)
    if working is not None:
        return kept(candidate, "live-job", working, jobs=jobs)
    with repository_lock(checkout.common_dir):
        if not candidate.admin.is_dir():
            return None
        if _changed(candidate):
            return kept(candidate, "in-use", "used again while gc ran", jobs=jobs)
        usage = usage or measure(candidate, Scan())
        if candidate.moved_from is not None and not dry_run:
            checkout.git.run("worktree", "repair", str(candidate.path), check=False)
        if not os.path.lexists(candidate.path / ".git"):
            return _vanished(checkout, candidate, jobs, usage, dry_run)
        return _remove_if_clean(
            checkout, candidate, jobs, usage, force=force, dry_run=dry_run, looked=looked
        )


def _live_jobs(
    candidate: SnapshotWorktree, statuses: dict[JobKey, JobStatus], live_only: bool = True
) -> list[JobReport]:
    """The candidate's jobs with their states (only the live ones, unless told otherwise)."""
    return [job for job in _job_reports(candidate, statuses) if job.live or not live_only]


def unrecorded_job_use(worktree: Path, survey: Survey) -> Optional[str]:
    """Why a live SLURM job may work in `worktree` although no record says so, if one may:
    its working directory lies in it (`sbatch --chdir` by hand, a launch that died before
    recording), or the user's jobs could not be listed."""
    if survey.unlisted is not None:
        return f"cannot list your SLURM jobs, one may work in it: {survey.unlisted}"
    inside = survey.live_workdirs_in(worktree)
    if inside:
        more = f" (+{len(inside) - 1} more)" if len(inside) > 1 else ""
        return f"a live SLURM job works in it: {inside[0]}{more}"
    return None


def measure(candidate: SnapshotWorktree, scan: Scan) -> Usage:
    """The disk a worktree and its admin dir hold (the worktree may have vanished)."""
    usage = scan.usage(candidate.path)
    usage.merge(scan.usage(candidate.admin))
    return usage


# job-written files, or why they could not be listed
Looked = Union[list[str], GitSlurmError]
LOOK_AHEAD_WORKERS = 2  # git statuses at once: each is a process, and git threads its lstats


class LookAhead:
    """The job-written files of every due worktree that only they could keep, listed by
    several git processes at once while the caller goes on (the threads only wait on git;
    run_git's environment is per call). A dry run's answer: a removal looks again, under
    the lock, just before it removes."""

    def __init__(self, due: Sequence[SnapshotWorktree], survey: Survey) -> None:
        self.looking = [
            c
            for c in due
            if c.record is not None
            and not _live_jobs(c, survey.statuses)
            and unrecorded_job_use(c.path, survey) is None
            and os.path.lexists(c.path / ".git")
        ]
        self.pool = ThreadPoolExecutor(LOOK_AHEAD_WORKERS, thread_name_prefix="gc-status")
        self.pending = {c.id: self.pool.submit(_look, c) for c in self.looking}

    def results(self) -> dict[str, Looked]:
        return {key: future.result() for key, future in self.pending.items()}

    def __enter__(self) -> LookAhead:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # an interrupt: no queued git status starts any more, the running ones end
        self.pool.shutdown(wait=True, cancel_futures=True)


def _look(candidate: SnapshotWorktree) -> Looked:
    try:
        return job_written_files(candidate)
    except GitSlurmError as exc:
        return exc


def _changed(candidate: SnapshotWorktree) -> bool:
    """Did a snapshot or launch touch the record since gc read it?"""
    now_record = read_record(candidate.admin)
    if candidate.record is None:
        return now_record is not None or making_of(candidate.admin) is None
    return now_record is None or now_record.to_json() != candidate.record.to_json()


def _vanished(
    checkout: Checkout,
    candidate: SnapshotWorktree,
    jobs: list[JobReport],
    usage: Usage,
    dry_run: bool,
) -> WorktreeReport:
    """The directory is gone (a scratch purge): only the admin dir is left to prune."""
    if not dry_run:  # git worktree prune skips locked worktrees
        checkout.git.run("worktree", "unlock", str(candidate.path), check=False)
    return _outcome(
        candidate, PRUNED, "vanished", "directory gone; admin record pruned", jobs, usage
    )


def _remove_if_clean(
    checkout: Checkout,
    candidate: SnapshotWorktree,
    jobs: list[JobReport],
    usage: Usage,
    *,
    force: bool,
    dry_run: bool,
    looked: Optional[Looked] = None,
) -> WorktreeReport:
    if looked is None:
        looked = _look(candidate) if candidate.record is not None else []
    if isinstance(looked, GitSlurmError):
        if not force:
            return kept(candidate, "failed", f"cannot inspect it: {looked}", jobs=jobs)
        looked = []
    files = looked
    if files and not force:
        report = kept(candidate, "job-files", f"holds {job_files_detail(files)}", jobs=jobs)
        return _with_files(report, files)
    if not dry_run:
        failure = remove_worktree(checkout.git, candidate)
        if failure is not None:
            report = kept(candidate, "failed", failure, jobs=jobs)
            return _with_files(report, files)
    if candidate.record is None:
        detail = "half made by a snapshot that was interrupted"
        return _outcome(candidate, REMOVED, "abandoned", detail, jobs, usage)
    detail = "unused" + (f"; --force: also its {job_files_detail(files)}" if files else "")
    return _with_files(_outcome(candidate, REMOVED, "unused", detail, jobs, usage), files)


def remove_worktree(git: Git, candidate: SnapshotWorktree) -> Optional[str]:
    """`git worktree unlock` + `git worktree remove`: links go as links, nothing behind them
    is followed. On failure the lock is put back, so the worktree stays protected."""
    reason = candidate.lock_reason()
    path = str(candidate.path)
    record = candidate.record
    nested = submodules.found_in(candidate.path) if record is None else record.submodules
    if nested:  # each through its own clone's `git worktree remove`: it lists them no more
        submodules.remove(candidate.path, nested)
    git.run("worktree", "unlock", path, check=False)
    rc, _, err = git.run("worktree", "remove", "--force", path, check=False)
    if rc == 0:
        return None
    if candidate.admin.is_dir() and reason is not None:
        git.run("worktree", "lock", "--reason", reason, path, check=False)
    return f"git worktree remove failed: {last_line(err) or f'exit {rc}'}"


def prune_vanished(checkout: Checkout, vanished: list[WorktreeReport]) -> list[str]:
    """`git worktree prune` for our vanished worktrees (unlocked by `_vanished`).

    Plain prune would also prune the user's own vanished worktrees, which gc must not touch:
    it runs only when its dry run names ours alone; otherwise each of ours goes by itself.
    """
    git = checkout.git
    if not prune_only(git, {w.id for w in vanished}):
        # `remove` of a missing directory deletes just its admin dir, as prune would
        for w in vanished:
            git.run("worktree", "remove", "--force", "--force", w.path, check=False)
    admin_dirs = checkout.common_dir / "worktrees"
    return [f"could not prune {w.path}" for w in vanished if (admin_dirs / w.id).exists()]


# ---- what killed snapshots leave in git dirs ---------------------------------------------


def sweep_temp_files(common_dir: Path, now: float, dry_run: bool) -> list[str]:
    """Remove (with `dry_run`: list) the private index copies of captures (`capture.py`) and
    the half-written records (`records.write_record`) that a killed snapshot left behind.

    Nothing tells a live capture's copy from a dead one's, so only those whose inode changed
    longer than `TEMP_FILE_GRACE` ago go (the ctime: the copy keeps the user's index's mtime).
    """
    git_dirs = [common_dir, *(common_dir / "worktrees").glob("*")]
    patterns = ("git-slurm-index.*", f"{RECORD_NAME}.*.tmp")
    stale = []
    for git_dir in git_dirs:
        for path in (p for pattern in patterns for p in git_dir.glob(pattern)):
            try:
                if path.is_file() and now - path.lstat().st_ctime > TEMP_FILE_GRACE:
                    stale.append(path)
            except OSError:
                continue
    if not dry_run:
        for path in stale:
            path.unlink(missing_ok=True)
    return sorted(str(p) for p in stale)


# ---- what jobs wrote ---------------------------------------------------------------------


def job_written_files(candidate: SnapshotWorktree) -> list[str]:
    """Paths in the worktree that are not the snapshot's, not its links, and not caches.

    `git status` against the snapshot commit lists them: untracked and ignored files (a job's
    `wandb/` is usually ignored) and changed tracked files; in every submodule checked out in
    it as well (the worktree's own status sees no ignored file inside one). git looks into
    no submodule directory that is not checked out (the snapshot leaves them empty without
    --submodules): whatever is in one was written there, and counts. Left out: the recorded
    link paths while they are symlinks (removal unlinks them, nothing behind them is
    touched), paths behind any symlink (not in the worktree at all), paths that no longer
    exist, and caches a job regenerates (`regenerable`).
    """
    links = set(candidate.record.links) if candidate.record else None
    nested_worktrees = (candidate.record.submodules if candidate.record else None) or []
    trees = [("", candidate.path, candidate.admin, links)]
    for rel in nested_worktrees:
        admin = admin_dir_of(candidate.path / rel)
        if admin is not None:
            trees.append((f"{rel}/", candidate.path / rel, admin, set()))
    found = []
    for prefix, root, admin, tree_links in trees:
        git = Git(admin, root)
        unsaved = unsaved_paths(git)
        unsaved += [
            f"{sub}/{path}"
            for sub in gitlinks(git)
            if f"{prefix}{sub}" not in nested_worktrees
            for path in files_below(root / sub)
        ]
        found += [
            f"{prefix}{path}"
            for path in unsaved
            if holds_data(root, path.rstrip("/"), tree_links) and not regenerable(path)
        ]
    return found


# Caches that a run writes and the next run regenerates from the code alone: not job data.
# (`.ipynb_checkpoints` is not among them: it holds a notebook's earlier contents.)
CACHE_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
CACHE_SUFFIXES = (".pyc", ".pyo")


def regenerable(rel: str) -> bool:
    """Is `rel` (relative, `/`-separated) a cache file: bytecode, or inside a tool's cache?"""
    parts = PurePosixPath(rel.rstrip("/")).parts
    if any(part in CACHE_DIRS - {"__pycache__"} for part in parts[:-1]):
        return True
    if rel.endswith("/"):
        return parts[-1] in CACHE_DIRS
    return parts[-1].endswith(CACHE_SUFFIXES)


def gitlinks(git: Git) -> list[str]:
    """The submodule paths of a work tree's index (mode 160000)."""
    if not index_may_hold_gitlinks(git.git_dir):
        return []
    _, out, _ = git.run("ls-files", "--stage", "-z", check=False)
    if "160000 " not in out:  # the usual case, found in C: a big index has 100,000s of entries
        return []
    entries = (entry.split("\t", 1) for entry in out.split("\0") if "\t" in entry)
    return [path for meta, path in entries if meta.startswith("160000 ")]


GITLINK_MODE = (0o160000).to_bytes(4, "big")  # as every index entry holds its mode


def index_may_hold_gitlinks(git_dir: Path) -> bool:
    """False when the index's own bytes prove it holds no submodule entry: each entry keeps
    its mode as 4 raw bytes (index versions 2 to 4), so an index without the bytes of mode
    160000 anywhere has none; a false alarm (a size of 57344, a hash) only costs `ls-files`.
    Split indexes (entries in `sharedindex.*`) are not looked into."""
    if any(git_dir.glob("sharedindex.*")):
        return True
    try:
        data = (git_dir / "index").read_bytes()
    except FileNotFoundError:
        return False  # no index, no entries (`ls-files` would list none)
    except OSError:
        return True
    return not data.startswith(b"DIRC") or GITLINK_MODE in data


def files_below(directory: Path) -> list[str]:
    """Every non-directory below `directory`, relative to it; symlinks are not followed."""
    found = []
    for top, dirs, files in os.walk(directory):
        rel = Path(top).relative_to(directory)
        found += [(rel / name).as_posix() for name in files]
        found += [(rel / name).as_posix() for name in dirs if (Path(top) / name).is_symlink()]
    return found


def unsaved_paths(git: Git) -> list[str]:
    """What `git status` shows in a work tree: changed, untracked and ignored paths."""
    rc, out, err = git.run(
        "--no-optional-locks",
        "-c",
        "core.fsmonitor=false",
        # hard links between snapshots (materialize.py) move every copy's ctime
        "-c",
        "core.trustctime=false",
        "status",
        "--porcelain",
        "-z",
        "--ignored",
        "--untracked-files=all",
        check=False,
    )
    if rc != 0:
        raise GitSlurmError(f"git status failed: {last_line(err) or f'exit {rc}'}")
    return status_paths(out)


def status_paths(porcelain_z: str) -> list[str]:
    """The paths of `git status --porcelain -z` (a rename's source entry is skipped)."""
    paths, fields, i = [], porcelain_z.split("\0"), 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC":
            i += 1  # the next field is where it was renamed or copied from
    return paths


def holds_data(worktree: Path, rel: str, links: Optional[set[str]]) -> bool:
    """Would removing the worktree lose what is at `rel`?

    `links` None (a half-made snapshot, whose link list is unknown): any symlink counts as one
    of its links: a symlink holds no data of its own, and no job ever ran there.
    """
    parts = PurePosixPath(rel).parts
    for depth in range(1, len(parts)):
        if worktree.joinpath(*parts[:depth]).is_symlink():
            return False  # behind a link: the file lives elsewhere, removal never goes there
    path = worktree.joinpath(*parts)
    if not os.path.lexists(path):
        return False
    return not (path.is_symlink() and (links is None or rel in links))


def job_files_detail(files: Sequence[str]) -> str:
    """`3 job-written files: wandb/ (2), model.ckpt`, grouped by top-level entry."""
    groups: dict[str, int] = {}
    for path in files:
        top, slash, _ = path.partition("/")
        groups[top + slash] = groups.get(top + slash, 0) + 1
    shown = [f"{name} ({n})" if name.endswith("/") else name for name, n in groups.items()]
    more = f", +{len(shown) - 5} more" if len(shown) > 5 else ""
    noun = "file" if len(files) == 1 else "files"
    return f"{len(files)} job-written {noun}: {', '.join(shown[:5])}{more}"


# ---- reports -----------------------------------------------------------------------------


def kept(
    candidate: SnapshotWorktree, reason: str, detail: str, jobs: Iterable[JobReport] = ()
) -> WorktreeReport:
    """A worktree that stays; without `jobs` (kept before SLURM was asked) its recorded jobs
    are listed as NOT_ASKED."""
    listed = list(jobs) or _job_reports(candidate, {})
    return _outcome(candidate, KEPT, reason, detail, listed, Usage())


def _outcome(
    candidate: SnapshotWorktree,
    action: str,
    reason: str,
    detail: str,
    jobs: list[JobReport],
    usage: Usage,
) -> WorktreeReport:
    return WorktreeReport(
        path=str(candidate.path),
        id=candidate.id,
        branches=candidate.branches,
        last_used=candidate.record.last_used if candidate.record else None,
        action=action,
        reason=reason,
        detail=detail,
        jobs=jobs,
        freed_bytes=usage.bytes,
        shared_files=usage.shared_files,
        usage=usage,
    )


def _with_files(report: WorktreeReport, files: list[str]) -> WorktreeReport:
    report.job_files = files[:MAX_LISTED_FILES]
    report.job_files_count = len(files)
    return report


def _job_reports(candidate: SnapshotWorktree, statuses: dict[JobKey, JobStatus]) -> list[JobReport]:
    jobs = candidate.record.jobs if candidate.record else []
    return [_job_report(job, statuses) for job in jobs]


# a job gc did not ask about (its worktree stays for another reason); live: not known to end
NOT_ASKED = JobStatus("NOT_ASKED", True, "not asked: the worktree stays for another reason")


def _job_report(job: JobRef, statuses: dict[JobKey, JobStatus]) -> JobReport:
    status = statuses.get(job.key, NOT_ASKED)
    return JobReport(
        job.id, job.kind, job.host, job.cluster, job.launch, status.state, status.live,
        status.detail,
    )  # fmt: skip


def _live_detail(live: list[JobReport]) -> str:
    first = live[0]
    label = "local job" if first.kind == "local" else "live job"
    more = f" (+{len(live) - 1} more)" if len(live) > 1 else ""
    why = f", {first.detail}" if first.state == "UNKNOWN" and first.detail else ""
    return f"{label} {first.id} {first.state}{why}{more}"


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
