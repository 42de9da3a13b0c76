"""What a launch that waits (`hydra.launcher.wait=true`) says while it waits.

Upstream says nothing for hours. Here the launch names the jobs it queued and their logs; while
it waits, how many are pending, running and done -- one status line redrawn on a terminal, else
a log line when the counts changed (at most every LOG_EVERY_S) and at least every HEARTBEAT_S;
and at the end which jobs failed, with their logs. Reporting never changes the launch: if a
job's state cannot be read, the launch waits and returns exactly as before.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, TextIO

from hydra.core.utils import JobStatus

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often states are read (submitit rate-limits its own SLURM queries)
LOG_EVERY_S = 60.0
HEARTBEAT_S = 600.0
# submitit's states (SLURM's, plus the local executor's) of a job that has not started yet
NOT_STARTED = {"PENDING", "REQUEUED", "CONFIGURING", "SUSPENDED", "RESIZING", "REQUEUE_HOLD"}


@dataclass
class Counts:
    pending: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0

    def text(self, total: int) -> str:
        said = f"{self.pending} pending, {self.running} running, {self.done} done"
        failed = f" ({self.failed} failed)" if self.failed else ""
        return f"{total} job{'s' if total != 1 else ''}: {said}{failed}"


@dataclass
class Watch:
    """The jobs of one launch, and what is known of them (a job done stays done)."""

    jobs: Sequence[Any]
    first_num: int
    failed: dict[int, Optional[str]] = field(default_factory=dict)  # index -> why, once done

    def counts(self) -> Counts:
        counts = Counts()
        for index, job in enumerate(self.jobs):
            if index not in self.failed and job.done():
                self.failed[index] = job_failed(job)
            if index in self.failed:
                counts.done += 1
                counts.failed += self.failed[index] is not None
            elif str(job.state).upper() in NOT_STARTED:
                counts.pending += 1
            else:
                counts.running += 1
        return counts


def job_failed(job: Any) -> Optional[str]:
    """Why a done job failed, or None: it raised, or its task did (Hydra's run_job returns a
    task's exception in the JobReturn instead of raising it, so the job's log lacks it)."""
    try:
        raised = job.exception()
        if raised is None:
            returned = job.results()[0]
            if getattr(returned, "status", None) != JobStatus.FAILED:
                return None
            raised = getattr(returned, "_return_value", None)
    except Exception as exc:  # no result at all (killed, lost): a failure too
        raised = exc
    return one_line(raised)


def one_line(exc: object) -> str:
    lines = str(exc).strip().splitlines()
    name = type(exc).__name__
    return f"{name}: {lines[-1] if name.endswith('JobError') else lines[0]}" if lines else name


def wait_for(jobs: Sequence[Any], first_num: int, stream: Optional[TextIO] = None) -> None:
    """Say what was queued, report until every job is done, then say which failed."""
    stream = stream or sys.stderr
    say_queued(jobs, first_num)
    watch = Watch(jobs, first_num)
    try:
        follow(watch, stream, stream.isatty())
    except Exception as exc:  # the report is a courtesy: the caller still waits for results
        log.warning("git-slurm: cannot follow the jobs' states (%s); waiting quietly", exc)
        return
    say_failed(watch)


def say_queued(jobs: Sequence[Any], first_num: int) -> None:
    log.info("git-slurm: %d job(s) queued; waiting for them (hydra.launcher.wait=true)", len(jobs))
    for offset, job in enumerate(jobs):
        log.info("\t#%d job %s: log %s", first_num + offset, job.job_id, job.paths.stderr)


def follow(
    watch: Watch,
    stream: TextIO,
    tty: bool,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    total = len(watch.jobs)
    said: Optional[str] = None
    logged_at = -float("inf")
    while True:
        counts = watch.counts()
        text = counts.text(total)
        now = clock()
        if tty:
            if text != said:
                stream.write(f"\r\x1b[Kgit-slurm: {text}")
                stream.flush()
        elif (text != said and now - logged_at >= LOG_EVERY_S) or now - logged_at >= HEARTBEAT_S:
            log.info("git-slurm: waiting for %s", text)
            logged_at = now
        said = text
        if counts.done == total:
            break
        sleep(POLL_S)
    if tty:
        stream.write("\n")
        stream.flush()


def say_failed(watch: Watch) -> None:
    failed = [(index, why) for index, why in sorted(watch.failed.items()) if why is not None]
    total = len(watch.jobs)
    if not failed:
        log.info("git-slurm: all %d job(s) done", total)
        return
    log.warning("git-slurm: %d of %d job(s) failed:", len(failed), total)
    for index, why in failed:
        job = watch.jobs[index]
        num = watch.first_num + index
        log.warning("\t#%d job %s: %s (log %s)", num, job.job_id, why, job.paths.stderr)
