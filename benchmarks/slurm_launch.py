"""Launch overhead on SLURM: from a Hydra multirun's start until all its jobs are queued, with
the snapshot and without it (the same launcher with `snapshot.enabled=false`, as upstream).

    .venv/bin/python benchmarks/slurm_launch.py                          # reference repository
    .venv/bin/python benchmarks/slurm_launch.py --size small --reps 1    # smoke run for CI

Options: --reps N (default 5; 2 for small), --jobs 1,100 (jobs per launch; more than one make
one job array), --size full|small, --root DIR (default /tmp/git-slurm-bench, where run.py keeps
the reference repository: don't run both at once), --json FILE, --markdown FILE.

Needs a SLURM cluster that answers (`make cluster` starts one on this machine) and this
repository installed in the running interpreter's environment (`make`).

Each launch is the reference repository's `train.py -m seed=range(N)` with
`hydra/launcher=submitit_slurm` and `hydra.launcher.wait=false`, its jobs submitted held
(`--hold`) under a job name nobody else uses: the command returns once sbatch has accepted them,
and they never run, so they compete with no measurement. Untimed, after each launch: squeue must
list exactly N held jobs of that name, with the ids the launcher logged (one plain job, or one
array of N tasks), or the run fails; then they are cancelled, and the launch's snapshot and
sweep dir are removed. So every snapshot is a fresh one, the dearest kind (run.py measures the
reuse and incremental kinds). The cases take turns, in an order rotated every repetition.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Optional

import refrepo
from common import load_average, machine, sealed_environment
from sweep import JOB_LINE, snapshot_branches

CLIENT_TIMEOUT = 30.0  # seconds for one squeue / scancel / sinfo call
CANCEL_DEADLINE = 60.0  # seconds for cancelled jobs to leave the queue
POLL_INTERVAL = 0.2

STAMP = r"^\[([0-9-]+ [0-9:]+,[0-9]+)\]\[HYDRA\] "
SNAPSHOT_LINE = re.compile(STAMP + r"git-slurm: snapshot \S+ .* took ([0-9.]+) s$", re.MULTILINE)
SWEEP_DIR_LINE = re.compile(STAMP + r"Submitit '\w+' sweep output dir : ", re.MULTILINE)
QUEUED_LINE = re.compile(STAMP + r"git-slurm: ([0-9]+) job\(s\) queued", re.MULTILINE)
QUEUED_JOB = re.compile(r"^\[[^]]+\]\[HYDRA\] \t#[0-9]+ job (\S+): outputs ", re.MULTILINE)


class BenchError(Exception):
    """The benchmark cannot measure what it claims (no cluster, jobs not queued, ...)."""


@dataclass(frozen=True)
class Launch:
    """One timed launch; every time is in seconds."""

    jobs: int
    snapshot: bool
    total: float  # command start -> command end, when sbatch has accepted every job
    startup: float  # command start -> the launcher's first step (see COLUMNS)
    snapshot_seconds: float  # what the launcher logged `git slurm-snapshot` took; 0 without
    submission: float  # total - startup - snapshot_seconds
    compose: float  # of submission: composing every job's config (see Marks)
    sbatch: float  # last `#N : overrides` line -> `queued` line: pickling, sbatch, recording
    slurm_job: str  # the job (or array) id squeue listed the launch's held jobs under


@dataclass
class Results:
    size: str
    jobs: list[int]
    reps: int
    machine: str
    started: str
    load_before: str
    load_after: str = ""
    launches: list[Launch] = field(default_factory=list)


# ---- one launch ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Marks:
    """When the launch log's lines that bound its phases were written (seconds since the epoch).

    With the snapshot: snapshot line (logged when `git slurm-snapshot` ends), each job's config
    composed, executor made, sweep-dir line, `#N : overrides` lines, sbatch, `queued` line.
    Without: executor made (submitit imported, ~40 ms), sweep-dir line, configs composed,
    `#N` lines, sbatch, `queued` line.
    """

    snapshot_end: Optional[float]
    snapshot_took: float  # as logged; 0 without the snapshot
    sweep_dir: float
    first_job: float
    last_job: float
    queued: float


def stamp(text: str) -> float:
    """A Hydra log time (local, milliseconds) as seconds since the epoch."""
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def marks(log: str, snapshot: bool) -> Marks:
    took = SNAPSHOT_LINE.search(log)
    sweep_dir, queued = SWEEP_DIR_LINE.search(log), QUEUED_LINE.search(log)
    jobs = JOB_LINE.findall(log)
    if snapshot != (took is not None) or sweep_dir is None or queued is None or not jobs:
        say(f"launch log:\n{log[-3000:]}")
        raise BenchError(f"snapshot {'on' if snapshot else 'off'}: unexpected launch log (above)")
    return Marks(
        snapshot_end=stamp(took.group(1)) if took else None,
        snapshot_took=float(took.group(2)) if took else 0.0,
        sweep_dir=stamp(sweep_dir.group(1)),
        first_job=stamp(jobs[0]),
        last_job=stamp(jobs[-1]),
        queued=stamp(queued.group(1)),
    )


def phases(started: float, total: float, at: Marks, slurm_job: str, jobs: int) -> Launch:
    """Split a launch's wall time at its log's marks (see COLUMNS)."""
    if at.snapshot_end is None:  # no earlier line marks the launcher's start
        first_step, composed = at.sweep_dir, at.first_job - at.sweep_dir
    else:
        first_step, composed = at.snapshot_end - at.snapshot_took, at.sweep_dir - at.snapshot_end
    startup = first_step - started
    return Launch(
        jobs=jobs,
        snapshot=at.snapshot_end is not None,
        total=total,
        startup=startup,
        snapshot_seconds=at.snapshot_took,
        submission=total - startup - at.snapshot_took,
        compose=composed,
        sbatch=at.queued - at.last_job,
        slurm_job=slurm_job,
    )


def launch_argv(jobs: int, snapshot: bool, name: str, worktrees: Path) -> list[str]:
    return [
        sys.executable, "train.py", "-m", "hydra/launcher=submitit_slurm", f"seed=range({jobs})",
        "hydra.launcher.wait=false", "+hydra.launcher.additional_parameters.hold=true",
        f"hydra.launcher.name={name}", f"hydra.sweep.dir=multirun/{name}",
        f"hydra.launcher.snapshot.enabled={str(snapshot).lower()}",
        "hydra.launcher.snapshot.push_to_remote=false",
        f"hydra.launcher.snapshot.worktree_dir={worktrees}",
    ]  # fmt: skip


def launch(bench: Bench, jobs: int, snapshot: bool) -> Launch:
    """One timed launch, its queue checked, its jobs cancelled and its traces removed."""
    repo, env = bench.repo, bench.env
    name = f"gs-bench-{uuid.uuid4().hex[:10]}"
    before = snapshot_branches(repo, env)
    try:
        started = time.time()
        total, log = timed_launch(launch_argv(jobs, snapshot, name, bench.worktrees), repo, env)
        slurm_job = check_queue(name, jobs, QUEUED_JOB.findall(log))
    finally:
        cancel(name)
    made = len(snapshot_branches(repo, env) - before)
    if made != int(snapshot):
        raise BenchError(f"launch {name} made {made} snapshots, expected {int(snapshot)}")
    shutil.rmtree(repo / "multirun" / name)
    refrepo.remove_snapshots(repo, env)  # the next snapshot is a fresh one too; flushed
    return phases(started, total, marks(log, snapshot), slurm_job, jobs)


def timed_launch(argv: list[str], repo: Path, env: dict[str, str]) -> tuple[float, str]:
    """(wall seconds, stdout) of a launch that must succeed.

    The launch runs in its own session, so that when this run is interrupted it (and the sbatch
    it may be running) can be killed before its jobs are cancelled: none is submitted after.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        say(f"{' '.join(argv)} failed ({proc.returncode}):\n{err[-3000:]}")
        lines = [line.strip() for line in err.splitlines() if line.strip()]
        raise BenchError(f"a launch failed (above): {lines[-1] if lines else proc.returncode}")
    return seconds, out


# ---- the queue -----------------------------------------------------------------------------


def slurm(argv: list[str]) -> str:
    """stdout of a SLURM client; BenchError when it fails or hangs."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"{argv[0]}: {exc}") from exc
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def check_cluster() -> None:
    if shutil.which("sbatch") is None:
        raise BenchError("SLURM's sbatch is not on PATH (`make cluster` starts a cluster here)")
    states = slurm(["sinfo", "-h", "-o", "%t"]).split()
    if not {"idle", "mix", "alloc"} & set(states):
        raise BenchError(f"no SLURM node takes jobs (sinfo states: {states or 'none'})")


def check_queue(name: str, jobs: int, logged: list[str]) -> str:
    """The id of the launch's job (or array) once squeue shows exactly `jobs` held jobs of
    that name, one per task, with the ids the launcher logged; BenchError otherwise."""
    rows = [line.split() for line in slurm(["squeue", "-h", "-r", "-n", name, "-o", "%i %T %r"])
            .splitlines()]  # fmt: skip
    ids = sorted(row[0] for row in rows)
    held = all(row[1:] == ["PENDING", "JobHeldUser"] for row in rows)
    arrays = {job_id.split("_")[0] for job_id in ids}
    one_launch = len(arrays) == 1 and (jobs == 1 or all("_" in job_id for job_id in ids))
    if len(ids) != jobs or ids != sorted(logged) or not held or not one_launch:
        raise BenchError(
            f"launch {name}: expected {jobs} held job(s) in one submission, with the ids it "
            f"logged ({len(logged)}); squeue lists {rows[:5]}{'...' if len(rows) > 5 else ''}"
        )
    return arrays.pop()


def cancel(name: str) -> None:
    """Cancel the launch's jobs and wait (polling, with a deadline) until none is queued."""
    slurm(["scancel", "-n", name])
    deadline = time.monotonic() + CANCEL_DEADLINE
    while slurm(["squeue", "-h", "-n", name, "-o", "%i"]).strip():
        if time.monotonic() > deadline:
            raise BenchError(
                f"jobs named {name} still queued {CANCEL_DEADLINE:.0f} s after scancel"
            )
        time.sleep(POLL_INTERVAL)


# ---- the run -------------------------------------------------------------------------------


def case_order(jobs: list[int], rep: int) -> list[tuple[int, bool]]:
    """Every (jobs, snapshot) case once, rotated so that each takes every place in turn."""
    cases = [(n, on) for on in (True, False) for n in jobs]
    shift = rep % len(cases)
    return cases[shift:] + cases[:shift]


class Bench:
    """The reference repository, sealed, with its snapshot worktrees in a scratch directory."""

    def __init__(self, size: refrepo.Size, root: Path) -> None:
        self.env = sealed_environment(root / "home")
        self.size = size
        self.repo = refrepo.prepare(root, size, self.env)
        # the launcher's own setting rather than `git config slurm.worktreeDir`: the
        # repository's config stays as run.py left it
        self.worktrees = root / size.name / "slurm-launch"
        shutil.rmtree(self.worktrees, ignore_errors=True)

    def clean_up(self) -> None:
        """The repository as prepare() leaves it: no snapshot or sweep dir of ours."""
        refrepo.reset(self.repo, self.size, self.env)
        shutil.rmtree(self.worktrees, ignore_errors=True)


def measure(bench: Bench, jobs: list[int], reps: int) -> Results:
    results = Results(
        bench.size.name, jobs, reps, machine(), dt.datetime.now().isoformat(), load_average()
    )
    for rep in range(reps):
        for n, on in case_order(jobs, rep):
            results.launches.append(launch(bench, n, on))
        say(f"repetition {rep + 1}/{reps} done; load {load_average()}")
    results.load_after = load_average()
    return results


def main(argv: Optional[list[str]] = None) -> int:
    args = parse(argv)
    # a plain `kill` should still cancel the held jobs: the `finally` blocks run on SystemExit
    signal.signal(signal.SIGTERM, _exit_on_signal)
    size = refrepo.SIZES[args.size]
    reps = args.reps or (2 if args.size == "small" else 5)
    try:
        check_cluster()
        bench = Bench(size, Path(args.root))
        try:
            say(f"reference repository: {bench.repo} ({size.name}); load {load_average()}")
            results = measure(bench, args.jobs, reps)
        finally:
            bench.clean_up()
    except (BenchError, RuntimeError) as exc:  # RuntimeError: a git command of common.run
        print(f"error: {exc}", file=sys.stderr)
        return 1
    text = report(results)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(results), indent=2) + "\n")
    return 0


def _exit_on_signal(signum: int, frame: Any) -> NoReturn:
    sys.exit(128 + signum)


def job_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of job counts: {text!r}") from None
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"job counts must be distinct and >= 1: {text!r}")
    return counts


def parse(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(refrepo.SIZES), default="full")
    parser.add_argument("--reps", type=int, help="launches of every case")
    parser.add_argument(
        "--jobs", type=job_counts, default=[1, 100], help="jobs per launch, e.g. 1,100"
    )
    parser.add_argument("--root", default=str(refrepo.DEFAULT_ROOT))
    parser.add_argument("--json", help="write every launch here")
    parser.add_argument("--markdown", help="write the report here")
    args = parser.parse_args(argv)
    if args.reps is not None and args.reps < 1:
        parser.error("--reps must be >= 1")
    return args


def say(text: str) -> None:
    print(f"[slurm-launch] {text}", file=sys.stderr, flush=True)


# ---- report --------------------------------------------------------------------------------

COLUMNS = """\
Columns: *total* is the wall time of the command, from its start until it exits, which it does
once sbatch has accepted every job (squeue then listed them all, held). *start-up* runs from the
command's start to the launcher's first step: Python, imports, Hydra composing the config and
the sweep, whose basic sweeper composes every job's config once to check the batch (so it grows
with the jobs); with the snapshot it ends when `git slurm-snapshot` starts (its logged time
subtracted from its log line's), without it at the launcher's sweep-dir line, just after
importing submitit (~40 ms). *snapshot* is what the launcher logged `git slurm-snapshot` took.
*submission* is the rest, until the interpreter has exited; *of which composing* is the
launcher composing every job's config once more (at launch time with the snapshot, so that a
queued job's config cannot change; without it for the jobs' output dirs, as
`hydra.launcher.wait=false` reports them), *of which sbatch* runs from the last `#N : overrides`
line to the `queued` line: pickling the jobs, sbatch, recording the job ids with the snapshot.
What is left of submission is logging each job's line twice and the interpreter's exit. Log
times have millisecond resolution, the snapshot's 10 ms."""


OVERHEAD = """\
*Without* is the same launcher with `hydra.launcher.snapshot.enabled=false`, which submits as
hydra-submitit-launcher 1.2.0 does; upstream has no `wait=false` (it waits for the jobs), so it
does not compose the jobs' configs at launch, which saves the *composing* of the snapshot-off
rows. *Overhead* is the difference of the median totals, *ratio* their quotient, *the rest* the
overhead less the snapshot: importing git-slurm, each job carrying its composed config (larger
pickles), recording the job ids. Every launch was checked, untimed: squeue listed exactly N
held jobs of its name with the ids it logged (a plain job for 1, one array of N tasks for more),
and it made one snapshot with the snapshot on, none without; its jobs were then cancelled."""


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.2f} s"


def spread(values: list[float]) -> str:
    """median (min - max)"""
    low, high = seconds(min(values)), seconds(max(values))
    return f"{seconds(statistics.median(values))} ({low} - {high})"


def label(jobs: int, snapshot: bool) -> str:
    what = "1 job" if jobs == 1 else f"{jobs} jobs (one array)"
    return f"{what}, snapshot {'on' if snapshot else 'off'}"


def report(results: Results) -> str:
    lines = [
        f"### Launch overhead on SLURM ({results.size} reference repository)",
        "",
        "`train.py -m seed=range(N) hydra/launcher=submitit_slurm hydra.launcher.wait=false`, "
        "jobs submitted held, on a single-node SLURM cluster on this machine. Every snapshot is "
        f"fresh (no earlier one to reuse or link from). {results.reps} launches of each case, "
        "taking turns in an order rotated every repetition.",
        f"Machine: {results.machine}. Load average (1/5/15 min) before: {results.load_before}, "
        f"after: {results.load_after}. {results.started[:16]}.",
        "",
        "| launch: median (min - max) | total | start-up | snapshot | submission "
        "| of which composing | of which sbatch |",
        "|---|---|---|---|---|---|---|",
    ]
    for jobs in results.jobs:
        for on in (True, False):
            got = [x for x in results.launches if x.jobs == jobs and x.snapshot == on]
            cells = [
                spread([x.total for x in got]),
                spread([x.startup for x in got]),
                spread([x.snapshot_seconds for x in got]) if on else "-",
                spread([x.submission for x in got]),
                spread([x.compose for x in got]),
                spread([x.sbatch for x in got]),
            ]
            lines.append(f"| {label(jobs, on)} | {' | '.join(cells)} |")
    lines += ["", *overhead_table(results), "", OVERHEAD, "", COLUMNS]
    return "\n".join(lines)


def overhead_table(results: Results) -> list[str]:
    """What the snapshot adds to a launch: medians with against without."""
    lines = [
        "| jobs | total with snapshot | without | overhead | ratio | of which the snapshot "
        "| the rest |",
        "|---|---|---|---|---|---|---|",
    ]
    for jobs in results.jobs:
        on = [x for x in results.launches if x.jobs == jobs and x.snapshot]
        off = [x for x in results.launches if x.jobs == jobs and not x.snapshot]
        with_, without = (statistics.median(x.total for x in s) for s in (on, off))
        snap = statistics.median(x.snapshot_seconds for x in on)
        extra = with_ - without
        lines.append(
            f"| {jobs} | {seconds(with_)} | {seconds(without)} | {seconds(extra)} "
            f"| {with_ / without:.2f}x | {seconds(snap)} | {seconds(extra - snap)} |"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
