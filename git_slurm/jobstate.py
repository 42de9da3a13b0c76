"""Whether the jobs recorded with a snapshot still run: the one place that asks SLURM
(`squeue`, `sacct`) and looks at local processes.

The answer errs on the side of "live": a job whose state cannot be read (no SLURM client, the
controller down or slow, a process on another host) keeps its worktree. What counts as ended:

- SLURM: a final state (COMPLETED, FAILED, ...), or a job the controller no longer knows.
  slurmctld holds every pending, running, requeued and suspended job, so a successful `squeue`
  that does not list a job proves it is none of those; `sacct` then only names how it ended.
- local: the process is gone, a zombie, or its number now belongs to a later process.

All SLURM ids are asked for in one `squeue` call (and one `sacct` call for those squeue no
longer lists), both within one time budget.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from plumbum import local
from plumbum.commands.processes import CommandNotFound, ProcessTimedOut

from git_slurm.errors import last_line
from git_slurm.records import JobRef

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


def job_states(jobs: Sequence[JobRef], timeout: float = 10.0) -> dict[str, JobStatus]:
    """The status of every job, keyed by `JobRef.id`, within about `timeout` seconds.

    Two jobs with the same id (a local pid equal to a SLURM id) share an entry that is live when
    either is: the safe reading for whoever keeps a worktree by it.
    """
    deadline = time.monotonic() + timeout
    slurm = [job for job in jobs if job.kind == "slurm"]
    other = [job for job in jobs if job.kind != "slurm"]
    found: dict[str, JobStatus] = {}
    for job_id, status in slurm_states([job.id for job in slurm], deadline).items():
        _merge(found, job_id, status)
    for job in other:
        _merge(found, job.id, local_state(job) if job.kind == "local" else _unknown_kind(job))
    return found


def _merge(found: dict[str, JobStatus], job_id: str, status: JobStatus) -> None:
    known = found.get(job_id)
    if known is None or (status.live and not known.live):
        found[job_id] = status


def _unknown_kind(job: JobRef) -> JobStatus:
    return JobStatus(UNKNOWN, True, f"unknown job kind {job.kind!r}")


# ---- SLURM -----------------------------------------------------------------------------


def slurm_states(ids: Iterable[str], deadline: float) -> dict[str, JobStatus]:
    """The status of each SLURM job id: squeue for all, then sacct for those squeue lacks."""
    wanted = sorted(set(ids))
    parsed = {job_id: parse_slurm_id(job_id) for job_id in wanted}
    result = {
        job_id: JobStatus(UNKNOWN, True, "not a SLURM job id")
        for job_id, sid in parsed.items()
        if sid is None
    }
    asked = {job_id: sid for job_id, sid in parsed.items() if sid is not None}
    if not asked:
        return result
    rows, failure = _squeue(_query_ids(asked.values()), deadline)
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
    result.update(_ended_states(missing, deadline))
    return result


def _query_ids(sids: Iterable[SlurmId]) -> str:
    """The ids to ask about: whole jobs, so that tasks still pending as one `12_[3-9]` record
    and tasks already split off are all listed (and matched by `SlurmId.covers`)."""
    return ",".join(sorted({sid.base for sid in sids}, key=int))


Row = tuple[SlurmId, str, str]  # (listed id, raw job id, state)


def _squeue(ids: str, deadline: float) -> tuple[list[Row], Optional[str]]:
    """Rows of `squeue` for `ids`, or a reason why it could not be asked."""
    # -t all: also jobs that ended within MinJobAge; -r: one line per array task
    args = ["-h", "-r", "-t", "all", "-j", ids, "-o", "%i|%A|%T"]
    rc, out, err, failure = _run_client("squeue", args, deadline)
    if failure is not None:
        return [], failure
    if rc != 0:
        if _FORGOTTEN in err and "," not in ids:  # the one job asked about is forgotten
            return [], None
        return [], f"squeue failed: {last_line(err) or f'exit {rc}'}"
    return _rows(out), None


def _ended_states(missing: dict[str, SlurmId], deadline: float) -> dict[str, JobStatus]:
    """Jobs slurmctld no longer holds have ended; sacct, when it answers, says how."""
    if not missing:
        return {}
    rows: list[Row] = []
    why = "sacct was not asked: no time left"
    if deadline - time.monotonic() >= MIN_SACCT_TIME:
        args = ["-n", "-P", "-X", "-j", _query_ids(missing.values()), "-o", "JobID,JobIDRaw,State"]
        rc, out, err, failure = _run_client("sacct", args, deadline)
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
    """`id|raw|state` lines (squeue and sacct alike) as rows; unreadable lines are dropped."""
    rows = []
    for line in out.splitlines():
        parts = line.strip().split("|")
        sid = parse_slurm_id(parts[0]) if len(parts) == 3 else None
        if sid is not None:
            rows.append((sid, parts[1].strip(), parts[2].strip()))
    return rows


def _states_of(sid: SlurmId, rows: list[Row]) -> list[str]:
    return [state for row, raw, state in rows if sid.covers(row, raw)]


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
    try:
        command = local[name]
    except CommandNotFound:
        return 1, "", "", f"{name} not found"
    try:
        rc, out, err = command[args].run(retcode=None, timeout=remaining)
    except ProcessTimedOut:
        return 1, "", "", f"{name} did not answer within {remaining:.3g}s"
    except OSError as exc:
        return 1, "", "", f"{name} could not run: {exc.strerror or exc}"
    return int(rc), str(out), str(err), None


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
