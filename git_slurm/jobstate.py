"""Whether the jobs recorded with a snapshot still run: the one place that asks SLURM
(`squeue`, `sacct`) and looks at local processes.

The answer errs on the side of "live": a job whose state cannot be read (no SLURM client, the
controller down or slow, a process on another host) keeps its worktree. What counts as ended:

- SLURM: a final state (COMPLETED, FAILED, ...), or a job the controller no longer knows.
  slurmctld holds every pending, running, requeued and suspended job, so a successful `squeue`
  that does not list a job proves it is none of those; `sacct` then only names how it ended.
- local: the process is gone, a zombie, or its number now belongs to a later process.

The user's jobs are listed with one `squeue` call per cluster (their working directories
too: a worktree a live job runs in is kept, recorded or not); recorded ids it does not list
are asked in one more `squeue` call, and those squeue no longer holds in one `sacct` call, all
within one time budget. The clients run in a clean environment (no filter of the user's can
hide a job) and are killed with their whole process group at the budget's end.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from plumbum import local

from git_slurm.errors import last_line
from git_slurm.processes import run_bounded
from git_slurm.records import JobKey, JobRef

UNKNOWN = "UNKNOWN"
ENDED = "ENDED"  # slurmctld forgot it and sacct could not say how it ended
EXITED = "EXITED"  # a local process that is gone
RUNNING = "RUNNING"

# States a SLURM job does not leave (squeue/sacct names). Any other state, also one this list
# does not know yet, counts as live: a worktree kept too long costs disk, one removed too early
# costs a job.
FINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "TIMEOUT",
        ENDED,
        EXITED,
    }
)
MIN_SACCT_TIME = 1.0  # below this much budget left, sacct is not worth starting
# `squeue -j <id>` of one id that slurmctld has forgotten fails with this. Not to be confused
# with `squeue: error: Invalid job id: 0`, which fails the whole call for every id in it.
_FORGOTTEN = "Invalid job id specified"
MAX_JOB_ID = 0xFFFFFFFD  # job ids are 32 bits; the top values mean "no value" to SLURM


@dataclass(frozen=True)
class JobStatus:
    """What is known about one job: a state name, and whether it may still use its worktree."""

    state: str
    live: bool
    detail: str = ""  # where the state came from, or why it could not be read


@dataclass(frozen=True)
class SlurmId:
    """A SLURM job id as recorded (`123`, `123_4`, `123_[5-9]`, `123+1`), taken apart."""

    base: str  # the job (or array job) number
    tasks: Optional[tuple[tuple[int, int], ...]]  # task id ranges; None: the whole job/array
    component: Optional[str] = None  # heterogeneous job component

    def covers(self, row: SlurmId, raw: str) -> bool:
        """Does a listed row (`row`, with raw job id `raw`) belong to this recorded job?"""
        if self.tasks is None and self.component is None and raw == self.base:
            return True  # the raw id of an array task, recorded as such
        if row.base != self.base:
            return False
        if self.component is not None and row.component not in (None, self.component):
            return False
        if self.tasks is None or row.tasks is None:
            return True
        return any(a <= d and c <= b for a, b in self.tasks for c, d in row.tasks)


_ID = re.compile(r"(\d+)(?:_(\d+|\[[\d,\-%]+\]))?(?:\+(\d+))?")


def parse_slurm_id(text: str) -> Optional[SlurmId]:
    """`123`, `123_4`, `123_[1,3-5]` (`%N` throttles ignored), `123+1`; None for anything else."""
    match = _ID.fullmatch(text.strip())
    if match is None:
        return None
    base, task, component = match.groups()
    if not 0 < int(base) <= MAX_JOB_ID:
        return None  # squeue would fail the whole batch over it
    return SlurmId(base, None if task is None else _task_ranges(task), component)


def _task_ranges(spec: str) -> tuple[tuple[int, int], ...]:
    """`4` or `[1,3-5%2]` as ranges of task ids: ((4, 4),) or ((1, 1), (3, 5))."""
    ranges = []
    for part in spec.strip("[]").split("%")[0].split(","):
        low, _, high = part.partition("-")
        if low:
            ranges.append((int(low), int(high or low)))
    return tuple(ranges)


def final(state: str) -> bool:
    """`CANCELLED by 0` (sacct) is CANCELLED."""
    return state.split(" ", 1)[0] in FINAL_STATES


def job_states(jobs: Sequence[JobRef], timeout: float = 10.0) -> dict[JobKey, JobStatus]:
    """The status of every job, keyed by `JobRef.key`, within about `timeout` seconds."""
    return survey_jobs(jobs, timeout, list_users_jobs=False).statuses


@dataclass
class Survey:
    """What SLURM and the local process table said in one go."""

    statuses: dict[JobKey, JobStatus]  # of the jobs asked about, by `JobRef.key`
    # working directories of the user's live SLURM jobs, recorded or not (sbatch --chdir by
    # hand, a launch that died before recording its jobs)
    live_workdirs: list[str] = field(default_factory=list)
    # why those could not be listed (then any worktree may be some job's working directory);
    # None when they were, or when this host has no SLURM client at all
    unlisted: Optional[str] = None
    _workdirs: Optional[Workdirs] = field(default=None, init=False, repr=False, compare=False)

    def live_workdirs_in(self, worktree: Path) -> list[str]:
        """Those of `live_workdirs` that are `worktree` or lie below it."""
        if self._workdirs is None:
            self._workdirs = Workdirs(self.live_workdirs)
        return self._workdirs.inside(worktree)


def survey_jobs(
    jobs: Sequence[JobRef], timeout: float = 10.0, *, list_users_jobs: bool = True
) -> Survey:
    """The status of every job in `jobs` and, with `list_users_jobs`, the working directories
    of the user's live SLURM jobs, within about `timeout` seconds.

    One `squeue -u <uid>` per cluster lists the user's jobs (on the default cluster, and on
    each cluster a recorded job names); a recorded job it does not list is asked for by id
    (another user's), and only one squeue no longer holds goes to sacct.
    """
    deadline = time.monotonic() + timeout
    found = Survey(statuses={})
    slurm = [job for job in jobs if job.kind == "slurm"]
    clusters = sorted({job.cluster or "" for job in slurm} | ({""} if list_users_jobs else set()))
    for cluster in clusters:
        of_cluster = [job for job in slurm if (job.cluster or "") == cluster]
        listed: Optional[list[Row]] = None
        if list_users_jobs:
            listed, failure = _users_jobs(cluster or None, deadline)
            if failure is not None and not failure.endswith(_NOT_FOUND):
                found.unlisted = failure if cluster == "" else f"{failure} (cluster {cluster})"
            live = [row for row in listed or [] if not final(row[2])]
            found.live_workdirs += [row[3] for row in live if row[3]]
        states = slurm_states([job.id for job in of_cluster], deadline, cluster or None, listed)
        for job in of_cluster:
            found.statuses[job.key] = states[job.id]
    for job in jobs:
        if job.kind != "slurm":
            found.statuses[job.key] = (
                local_state(job) if job.kind == "local" else _unknown_kind(job)
            )
    return found


class Workdirs:
    """Working directories of jobs, each as written and resolved: resolved once, for all the
    worktrees asked about (a resolve is an lstat per path component)."""

    def __init__(self, workdirs: Iterable[str]) -> None:
        self.spelled = [(w, {Path(w), _resolved(Path(w))}) for w in workdirs]

    def inside(self, worktree: Path) -> list[str]:
        """Those that are `worktree` or lie below it, as written or resolved."""
        spellings = {worktree, _resolved(worktree)}
        return [
            workdir
            for workdir, paths in self.spelled
            if any(p == d or d in p.parents for p in paths for d in spellings)
        ]


def workdirs_in(workdirs: Iterable[str], worktree: Path) -> list[str]:
    """Those of `workdirs` that are `worktree` or lie below it, as written or resolved."""
    return Workdirs(workdirs).inside(worktree)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


def _unknown_kind(job: JobRef) -> JobStatus:
    return JobStatus(UNKNOWN, True, f"unknown job kind {job.kind!r}")


# ---- SLURM -----------------------------------------------------------------------------

# The clients read filters and output settings from the environment (SQUEUE_PARTITION,
# SQUEUE_USERS, SQUEUE_STATES, SQUEUE_FORMAT, SACCT_FORMAT, SLURM_CLUSTERS, SLURM_TIME_FORMAT,
# ...): any of them could hide a live job, or change what a row says. So every variable of
# theirs goes, except those that say how to reach and authenticate to the controller; every
# filter gc relies on is an explicit argument.
_CLIENT_PREFIXES = ("SLURM_", "SQUEUE_", "SACCT_", "SINFO_", "SCONTROL_")
_CLIENT_KEEP = frozenset({"SLURM_CONF", "SLURM_JWT"})
_NOT_FOUND = "not found"


def slurm_environment() -> dict[str, str]:
    """The environment for squeue and sacct: ours, minus every setting that filters."""
    # plumbum's view of the environment: the one every other command of ours runs with
    return {
        name: value
        for name, value in local.env.getdict().items()
        if name in _CLIENT_KEEP or not name.startswith(_CLIENT_PREFIXES)
    }


def slurm_states(
    ids: Iterable[str],
    deadline: float,
    cluster: Optional[str] = None,
    listed: Optional[list[Row]] = None,
) -> dict[str, JobStatus]:
    """The status of each SLURM job id of `cluster` (None: the default one): from the rows
    of the user's jobs when `listed`, then squeue for the rest, then sacct for those squeue
    lacks."""
    wanted = sorted(set(ids))
    parsed = {job_id: parse_slurm_id(job_id) for job_id in wanted}
    result = {
        job_id: JobStatus(UNKNOWN, True, "not a SLURM job id")
        for job_id, sid in parsed.items()
        if sid is None
    }
    asked = {job_id: sid for job_id, sid in parsed.items() if sid is not None}
    if listed:
        for job_id, sid in list(asked.items()):
            states = _states_of(sid, listed)
            if states:
                result[job_id] = _status(states, "squeue")
                del asked[job_id]
    if not asked:
        return result
    rows, failure = _squeue(_query_ids(asked.values()), deadline, cluster)
    if failure is not None:
        result.update({job_id: JobStatus(UNKNOWN, True, failure) for job_id in asked})
        return result
    missing = {}
    for job_id, sid in asked.items():
        states = _states_of(sid, rows)
        if states:
            result[job_id] = _status(states, "squeue")
        else:
            missing[job_id] = sid
    result.update(_ended_states(missing, deadline, cluster))
    return result


def _query_ids(sids: Iterable[SlurmId]) -> str:
    """The ids to ask about: whole jobs, so that tasks still pending as one `12_[3-9]` record
    and tasks already split off are all listed (and matched by `SlurmId.covers`)."""
    return ",".join(sorted({sid.base for sid in sids}, key=int))


Row = tuple[SlurmId, str, str, str]  # (listed id, raw job id, state, working dir or "")

# -h: no header; -r: one line per array task; -t all: every state, also jobs that ended
# within MinJobAge; --all: also hidden partitions' jobs. %Z: the working directory.
_SQUEUE = ["-h", "-r", "--all", "-t", "all"]


def _on(cluster: Optional[str]) -> list[str]:
    return [] if cluster is None else ["-M", cluster]


def _users_jobs(cluster: Optional[str], deadline: float) -> tuple[list[Row], Optional[str]]:
    """Every job of this user that slurmctld holds, with its working directory."""
    args = [*_SQUEUE, *_on(cluster), "-u", str(os.getuid()), "-o", "%i|%A|%T|%Z"]
    rc, out, err, failure = _run_client("squeue", args, deadline)
    if failure is not None:
        return [], failure
    if rc != 0:
        return [], f"squeue failed: {last_line(err) or f'exit {rc}'}"
    return _rows(out), None


def _squeue(ids: str, deadline: float, cluster: Optional[str]) -> tuple[list[Row], Optional[str]]:
    """Rows of `squeue` for `ids`, or a reason why it could not be asked."""
    args = [*_SQUEUE, *_on(cluster), "-j", ids, "-o", "%i|%A|%T"]
    rc, out, err, failure = _run_client("squeue", args, deadline)
    if failure is not None:
        return [], failure
    if rc != 0:
        if _FORGOTTEN in err and "," not in ids:  # the one job asked about is forgotten
            return [], None
        return [], f"squeue failed: {last_line(err) or f'exit {rc}'}"
    return _rows(out), None


def _ended_states(
    missing: dict[str, SlurmId], deadline: float, cluster: Optional[str]
) -> dict[str, JobStatus]:
    """Jobs slurmctld no longer holds have ended; sacct, when it answers, says how."""
    if not missing:
        return {}
    rows: list[Row] = []
    why = "sacct was not asked: no time left"
    if deadline - time.monotonic() >= MIN_SACCT_TIME:
        ids = _query_ids(missing.values())
        args = ["-n", "-P", "-X", "--allusers", *_on(cluster), "-j", ids]
        rc, out, err, failure = _run_client(
            "sacct", [*args, "-o", "JobID,JobIDRaw,State"], deadline
        )
        why = failure or (f"sacct: {last_line(err) or f'exit {rc}'}" if rc != 0 else "")
        rows = _rows(out) if rc == 0 and failure is None else []
    result = {}
    for job_id, sid in missing.items():
        states = _states_of(sid, rows)
        if states:
            result[job_id] = _status(states, "sacct")
        else:
            detail = "not in the queue any more" + (f" ({why})" if why else "")
            result[job_id] = JobStatus(ENDED, False, detail)
    return result


def _rows(out: str) -> list[Row]:
    """`id|raw|state[|workdir]` lines (squeue and sacct alike) as rows; unreadable lines (a
    `CLUSTER: name` banner of -M) are dropped."""
    rows = []
    for line in out.splitlines():
        parts = line.rstrip("\n").split("|", 3)
        sid = parse_slurm_id(parts[0]) if len(parts) >= 3 else None
        if sid is not None:
            workdir = parts[3] if len(parts) == 4 else ""
            rows.append((sid, parts[1].strip(), parts[2].strip(), workdir))
    return rows


def _states_of(sid: SlurmId, rows: list[Row]) -> list[str]:
    return [row[2] for row in rows if sid.covers(row[0], row[1])]


def _status(states: list[str], source: str) -> JobStatus:
    """One status for all rows of a job (an array has one per task): live if any task is."""
    names = sorted({state.split(" ", 1)[0] for state in states})
    live = [name for name in names if not final(name)]
    return JobStatus(",".join(live or names), bool(live), source)


def _run_client(name: str, args: list[str], deadline: float) -> tuple[int, str, str, Optional[str]]:
    """Run a SLURM client until `deadline`: (rc, stdout, stderr, reason it could not run)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return 1, "", "", f"{name} was not asked: no time left"
    env = slurm_environment()
    command = shutil.which(name, path=env.get("PATH"))
    if command is None:
        return 1, "", "", f"{name} {_NOT_FOUND}"
    try:
        rc, out, err = run_bounded([command, *args], env=env, timeout=remaining)
    except subprocess.TimeoutExpired:
        return 1, "", "", f"{name} did not answer within {remaining:.3g}s"
    except OSError as exc:
        return 1, "", "", f"{name} could not run: {exc.strerror or exc}"
    return rc, out, err, None


# ---- local processes -------------------------------------------------------------------


def local_state(job: JobRef) -> JobStatus:
    """A local job runs while its process does: same pid, same start time, not a zombie."""
    if job.host != socket.gethostname():
        return JobStatus(UNKNOWN, True, f"local job on host {job.host}")
    if not job.id.isdigit():
        return JobStatus(UNKNOWN, True, f"not a process id: {job.id!r}")
    stat = process_stat(int(job.id))
    if stat is None:
        return JobStatus(EXITED, False, "no such process")
    state, ticks = stat
    if state in ("Z", "X"):
        return JobStatus(EXITED, False, "exited, not yet reaped")
    if job.start_ticks is not None and ticks != job.start_ticks:
        return JobStatus(EXITED, False, "its process id now belongs to another process")
    return JobStatus(RUNNING, True, "process")


def process_stat(pid: int) -> Optional[tuple[str, int]]:
    """(state letter, start time in clock ticks since boot) of a process, or None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
        return parse_proc_stat(text)
    except (OSError, ValueError):
        return None


def parse_proc_stat(text: str) -> tuple[str, int]:
    """(state letter, field 22 = start ticks) of a /proc/PID/stat line."""
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and ')'
    return fields[0], int(fields[22 - 3])  # fields[0] is field 3 of proc(5)


def parse_start_ticks(text: str) -> int:
    """Field 22 of a /proc/PID/stat line."""
    return parse_proc_stat(text)[1]


def process_start_ticks(pid: int) -> Optional[int]:
    """Field 22 of /proc/PID/stat: with the pid, it names one process for good."""
    stat = process_stat(pid)
    return None if stat is None else stat[1]
