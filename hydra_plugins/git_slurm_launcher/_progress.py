"""What a launch that waits (`hydra.launcher.wait=true`) says while it waits.

Upstream says nothing for hours. Here the launch names the jobs it queued and their logs; while
it waits, how many are pending, running and done -- one status line redrawn on a terminal, else
a log line when the counts changed (at most every LOG_EVERY_S) and at least every HEARTBEAT_S;
and at the end which jobs failed, with their logs. Reporting never changes the launch: if a
job's state cannot be read, the launch waits and returns exactly as before.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, TextIO

from hydra.core.utils import JobStatus

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often states are read (submitit rate-limits its own SLURM queries)
# Reading the states costs no SLURM query per job (submitit asks sacct once for all, at most
# every 2 s), but a few file-system calls per unfinished job (submitit's done() stats and
# chmods its folder to defeat NFS caching): 2000 jobs took 0.1-0.5 s per read here. Waiting
# this many times as long as a read took keeps the report under 5% of the login node's time.
POLL_COST_FACTOR = 20.0
LOG_EVERY_S = 60.0
HEARTBEAT_S = 600.0
CLEAR_TO_END = "\x1b[K"
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
    """A job's failure in one line: the exception, or what submitit's own error wraps."""
    name = type(exc).__name__
    lines = str(exc).strip().splitlines()
    if not lines:
        return name
    if name == "UncompletedJobError":  # no result at all: submitit's words, not its log tail
        found = NO_OUTPUT.search(str(exc))
        if found:
            return f"{name}: {found.group(0)}"
    if name == "FailedJobError":  # the job's traceback between dashed lines, then log paths
        trace = between_dashes(lines)
        if trace:
            return f"{name}: {trace[-1].strip()}"
    return f"{name}: {lines[0]}"


NO_OUTPUT = re.compile(r"has not produced any output \(state: [^)]*\)")


def between_dashes(lines: list[str]) -> list[str]:
    """The non-empty lines between the first two lines of dashes (submitit's frame of a trace)."""
    rules = [i for i, line in enumerate(lines) if line.strip() and not line.strip("- ")]
    if len(rules) < 2:
        return []
    return [line for line in lines[rules[0] + 1 : rules[1]] if line.strip()]


def wait_for(jobs: Sequence[Any], first_num: int, stream: Optional[TextIO] = None) -> None:
    """Say what was queued, report until every job is done, then say which failed."""
    stream = stream or sys.stderr  # None when stderr is closed (`2>&-`)
    say_queued(jobs, first_num)
    watch = Watch(jobs, first_num)
    try:
        follow(watch, stream, is_terminal(stream))
    except Exception as exc:  # the report is a courtesy: the caller still waits for results
        log.warning("git-slurm: cannot follow the jobs' states (%s); waiting quietly", exc)
        return
    say_failed(watch)


def say_queued(jobs: Sequence[Any], first_num: int) -> None:
    log.info("git-slurm: %d job(s) queued; waiting for them (hydra.launcher.wait=true)", len(jobs))
    for offset, job in enumerate(jobs):
        log.info("\t#%d job %s: log %s", first_num + offset, job.job_id, job.paths.stderr)


def is_terminal(stream: Optional[TextIO]) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (OSError, ValueError):  # closed
        return False


def follow(
    watch: Watch,
    stream: Optional[TextIO],
    tty: bool,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    total = len(watch.jobs)
    said: Optional[str] = None
    logged_at = -float("inf")
    line = StatusLine(stream) if tty and stream is not None else None
    try:
        while True:
            started = clock()
            counts = watch.counts()
            text = counts.text(total)
            now = clock()
            if line is not None and text != said and not line.draw(f"git-slurm: {text}"):
                line = None  # the terminal went away (a closed ssh session): log lines instead
            if line is None and due(text != said, now - logged_at):
                log.info("git-slurm: waiting for %s", text)
                logged_at = now
            said = text
            if counts.done == total:
                break
            sleep(max(POLL_S, POLL_COST_FACTOR * (now - started)))
    finally:  # a Ctrl-C too: what Hydra says next starts on a line of its own
        if line is not None:
            line.end()


def due(changed: bool, since_logged: float) -> bool:
    """Whether a log line is due: the counts changed and a minute passed, or ten minutes."""
    return (changed and since_logged >= LOG_EVERY_S) or since_logged >= HEARTBEAT_S


class StatusLine:
    """One line redrawn in place, as git's progress: `\r` and erase-to-the-end, or on a
    terminal that has no escapes (TERM=dumb, Emacs' shell) `\r` and spaces over the rest."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.dumb = os.environ.get("TERM", "dumb") == "dumb"
        self.width = 0  # of what is shown; 0 when nothing is

    def draw(self, text: str) -> bool:
        """Show `text`; False when the terminal cannot be written any more."""
        erase = " " * (self.width - len(text)) if self.dumb else ""
        self.width = len(text)  # first: a Ctrl-C inside the write must still end the line
        try:
            self.stream.write(f"\r{CLEAR_TO_END if not self.dumb else ''}{text}{erase}")
            self.stream.flush()
        except (OSError, ValueError):
            self.width = 0
            return False
        return True

    def end(self) -> None:
        """End the line; never raising, so that a Ctrl-C being handled stays the exception."""
        if self.width:
            self.width = 0
            try:
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):  # a terminal closed meanwhile
                pass


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
