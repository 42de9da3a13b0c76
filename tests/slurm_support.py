"""Helpers for tests that talk to a real SLURM cluster (see tests/slurm/cluster.sh).

Every call to a SLURM client is bounded by a timeout, so a hung or absent controller makes a
test fail (or skip) with a reason instead of hanging the run.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Callable, Optional, TypeVar

T = TypeVar("T")

#: Node states (``sinfo %t``) in which the node accepts jobs. A trailing ``*`` (not
#: responding) or ``~`` (powered down) means it does not, nor do ``down``/``drain``/``unk``.
USABLE_NODE_STATES = frozenset({"idle", "mix", "alloc"})
#: Upper bound for one call to a SLURM client (they retry internally when slurmctld is down).
CLIENT_TIMEOUT = 10.0
#: Upper bound for one call a test makes once (sbatch, scancel, scontrol), outside a poll that
#: would ask again: a controller busy with another run's thousand-job array can take seconds.
CALL_TIMEOUT = 60.0
#: Pause between two polls while waiting on the cluster.
POLL_INTERVAL = 0.2

_CLIENTS = ("sinfo", "sbatch", "sacct")


def _run(args: list[str], timeout: float = CLIENT_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run a SLURM client; the caller inspects the return code."""
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


#: Upper bound for the one probe that decides, for the whole session, whether the SLURM tests
#: run: a controller slow to answer on a loaded machine is not a missing one (a down one makes
#: sinfo give up by itself after ~10 s).
PROBE_TIMEOUT = 30.0


def slurm_available(timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """Tell whether a SLURM cluster with a usable node answers within ``timeout`` seconds.

    Returns ``(True, "")`` or ``(False, reason)``, the reason being meant for a human.
    """
    missing = [name for name in _CLIENTS if shutil.which(name) is None]
    if missing:
        return False, f"SLURM client commands not on PATH: {', '.join(missing)}"
    try:
        proc = _run(["sinfo", "-h", "-o", "%t"], timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"sinfo did not answer within {timeout:g} s"
    if proc.returncode != 0:
        return False, f"sinfo failed (exit {proc.returncode}): {proc.stderr.strip()}"
    states = proc.stdout.split()
    if not USABLE_NODE_STATES.intersection(states):
        return False, f"no node is idle, mix or alloc (sinfo states: {states or 'none'})"
    return True, ""


def _base_state(state: str) -> str:
    """``"CANCELLED by 0"`` (sacct) -> ``"CANCELLED"``; other states pass unchanged."""
    return state.split(" ", 1)[0]


def _combine(states: list[str]) -> str:
    """One state for one or more job records.

    A plain job or an array task has one record. A whole array (``job_state("12")``) has one
    per task: if they agree that is the state, otherwise the distinct states sorted and joined
    with commas (e.g. ``"COMPLETED,RUNNING"``), which matches no single state a caller waits for.
    """
    distinct = sorted({_base_state(s) for s in states if s})
    return ",".join(distinct)


def _squeue_state(job_id: str) -> Optional[str]:
    """State known to slurmctld, or None once it has forgotten the job (after MinJobAge).

    ``-t all`` includes finished jobs, which slurmctld knows before sacct does; ``-r`` lists
    the pending tasks of an array one by one instead of as one ``12_[3-9]`` record.
    """
    proc = _run(["squeue", "-h", "-r", "-t", "all", "-j", job_id, "-o", "%T"])
    if proc.returncode != 0:
        # squeue exits 1 with "Invalid job id specified" for a job it no longer holds
        return None
    return _combine(proc.stdout.split()) or None


def sacct_record(job_id: str) -> Optional[tuple[str, str]]:
    """``(State, ExitCode)`` of a job (allocation only, no steps) from the accounting database.

    None while slurmdbd has no record yet (sacct lags slurmctld by up to a few seconds).
    ExitCode is ``"code:signal"``, e.g. ``"0:0"``.
    """
    proc = _run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,ExitCode"])
    if proc.returncode != 0:
        raise RuntimeError(f"sacct -j {job_id} failed (exit {proc.returncode}): {proc.stderr}")
    rows = [line.split("|") for line in proc.stdout.splitlines() if line]
    if not rows:
        return None
    state = _combine([row[0] for row in rows])
    exit_codes = sorted({row[1] for row in rows})
    return state, ",".join(exit_codes)


def job_state(job_id: str) -> str:
    """Current state of a job, array task (``"12_3"``) or whole array (``"12"``).

    Asks slurmctld (squeue) first, then the accounting database (sacct). Returns ``""`` when
    neither knows the job yet.
    """
    state = _squeue_state(job_id)
    if state is not None:
        return state
    record = sacct_record(job_id)
    return record[0] if record is not None else ""


def _poll(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float, what: str) -> T:
    """Call ``fetch`` until ``done(value)`` holds; TimeoutError (with the last value) after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    seen: object = "nothing yet"
    while True:
        try:
            value = fetch()
        # one client call slow to answer or refused (a loaded controller or slurmdbd) is no
        # answer yet, not a failure: the next poll asks again, until the deadline
        except subprocess.TimeoutExpired as slow:
            seen = f"no answer from {slow.cmd[0]} within {slow.timeout:g} s"
        except RuntimeError as refused:  # what sacct_record raises for a failed sacct
            seen = str(refused)
        else:
            if done(value):
                return value
            seen = value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:g} s, last seen {seen!r}")
        time.sleep(POLL_INTERVAL)


def wait_for_job_state(job_id: str, states: AbstractSet[str], timeout: float) -> str:
    """Wait until the job is in one of ``states`` (e.g. ``{"COMPLETED", "FAILED"}``), return it.

    Raises TimeoutError naming the last state seen.
    """
    return _poll(
        lambda: job_state(job_id),
        lambda state: state in states,
        timeout,
        f"job {job_id} in {sorted(states)}",
    )


def wait_for_sacct(job_id: str, states: AbstractSet[str], timeout: float) -> tuple[str, str]:
    """Wait until sacct reports the job in one of ``states``; return ``(State, ExitCode)``.

    Use this rather than :func:`wait_for_job_state` to check what submitit will see: it reads
    job states only from sacct, which lags slurmctld.
    """
    record = _poll(
        lambda: sacct_record(job_id),
        lambda rec: rec is not None and rec[0] in states,
        timeout,
        f"sacct record of job {job_id} in {sorted(states)}",
    )
    assert record is not None
    return record


#: Upper bound for cancelled jobs to end: KillWait=5 (tests/slurm/cluster.sh), the epilog, and
#: slurmctld's own pace on a loaded machine. Only a broken cluster takes this long.
CANCEL_TIMEOUT = 120.0


def jobs_working_under(root: Path) -> dict[str, str]:
    """Id -> state of the jobs slurmctld holds unfinished (pending, running, completing, ...)
    whose working directory or batch script is `root` or lies below it: a test's own jobs, by
    its tmp_path (submitit's jobs work where the test runs, but their scripts are in its
    folder)."""
    proc = _run(["squeue", "-h", "-o", "%A|%T|%Z|%o"])
    if proc.returncode != 0:  # raised, so that a poll asks again
        raise RuntimeError(f"squeue failed (exit {proc.returncode}): {proc.stderr.strip()}")
    inside = (str(root), str(root.resolve()))
    rows = [line.split("|") for line in proc.stdout.splitlines()]
    return {
        row[0]: row[1]
        for row in rows
        if any(path == d or path.startswith(f"{d}/") for path in row[2:] for d in inside)
    }


def end_jobs_working_under(root: Path) -> list[str]:
    """Cancel every unfinished job working under `root` and wait until slurmctld holds none
    of them unfinished, so that the next test finds the node's CPUs free; returns the ids of
    those that had not been cancelled yet (a job being cancelled is COMPLETING)."""
    left = _poll(lambda: jobs_working_under(root), lambda _: True, CANCEL_TIMEOUT, "squeue")
    if left:
        _run(["scancel", *left])
        _poll(
            lambda: jobs_working_under(root),
            lambda jobs: not jobs,
            CANCEL_TIMEOUT,
            f"the cancelled jobs {sorted(left)} to end",
        )
    return sorted(job for job, state in left.items() if state != "COMPLETING")
