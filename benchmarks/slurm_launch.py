"""Launch time on SLURM against upstream: from a Hydra multirun's start until sbatch has accepted
every job, for hydra-submitit-launcher 1.2.0 and for git-slurm with the snapshot off and on.

    .venv/bin/python benchmarks/slurm_launch.py                    # 1, 100, 1000 jobs, 3 reps
    .venv/bin/python benchmarks/slurm_launch.py --small            # CI smoke run (~1 min)
    .venv/bin/python benchmarks/slurm_launch.py --code . --code /work/h-launcher --jobs 100

Options: --jobs 1,100,1000, --reps N (default 3), --code DIR (repeatable; a checkout whose
git_slurm/ and hydra_plugins/ are compared, only read; default this one), --size full|small
(the reference repository, refrepo.py), --root DIR (default /tmp/git-slurm-bench: don't run
run.py at the same time), --kinds LIST (of upstream,off,fresh,reused,edited; default all),
--json FILE, --markdown FILE. --small is --size small --jobs 1,10 --reps 1.

Needs a SLURM cluster that answers (`make cluster`) and the package registry for the first run:
it builds two venvs under .bench-venvs/ (bench_venvs.py), upstream's and git-slurm's, with the
same hydra-core and submitit.

Variants, taking turns in an order rotated every repetition: *upstream* (its venv; the same
command without git-slurm's options); for each --code: *off* (`snapshot.enabled=false`),
*fresh* (no snapshot exists), *reused* (right after fresh: the identical tree's worktree is
reused), *edited* (one file edited since: the incremental snapshot). Every launch is the
reference repository's `train.py -m seed=range(N) hydra/launcher=submitit_slurm`, its jobs
submitted held (`--hold`) under a name nobody else uses, so they never run. launch_marks.py,
loaded in the launch by its venv, reports the moment submitit's map_array returns (sbatch has
accepted every job) with the split; the launch is then killed (upstream would wait for its jobs).
Untimed, after each launch: squeue must list exactly those N held jobs, one submission, or the
run fails; then they are cancelled, and (after edited, before fresh) the snapshots removed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Optional

import bench_venvs
import refrepo
from common import load_average, machine, sealed_environment, write_report
from sweep import snapshot_branches

CLIENT_TIMEOUT = 30.0  # seconds for one squeue / scancel / sinfo call
CANCEL_DEADLINE = 120.0  # seconds for cancelled jobs to leave the queue
LAUNCH_DEADLINE = 1200.0  # seconds for a launch to queue its jobs
POLL_INTERVAL = 0.2
EDITED = "train.py"  # the file the edited variant changes (appended a comment)
SNAPSHOT_KINDS = ("fresh", "reused", "edited")
KINDS = ("upstream", "off", *SNAPSHOT_KINDS)


class BenchError(Exception):
    """The benchmark cannot measure what it claims (no cluster, jobs not queued, ...)."""


@dataclass(frozen=True)
class Variant:
    kind: str  # upstream, off, fresh, reused, edited
    code: str = ""  # the label of the git-slurm code (bench_venvs.code_label); "" for upstream

    @property
    def name(self) -> str:
        if self.kind == "upstream":
            return "upstream 1.2.0"
        what = "snapshot off" if self.kind == "off" else f"snapshot on, {self.kind}"
        return f"{self.code}: {what}"


@dataclass(frozen=True)
class Launch:
    """One timed launch; every time is in seconds (see COLUMNS)."""

    variant: str
    kind: str
    code: str
    jobs: int
    total: float
    startup: float
    sweeper: float
    sweeper_compose: float
    launcher: float
    snapshot: float
    compose: float
    pickling: float
    sbatch: float
    per_job: float
    slurm_job: str
    load: float  # 1-minute load average just before
    cpu_total: float = 0.0  # CPU seconds until queued (see launch_marks.py)
    cpu_startup: float = 0.0
    cpu_sweeper: float = 0.0
    cpu_launcher: float = 0.0
    # setup waiting until the snapshot has recorded the tree (in start-up), where the launcher
    # starts the snapshot at setup; `snapshot` is then what of it the first launch waited for
    capture: float = 0.0


@dataclass
class Results:
    size: str
    jobs: list[int]
    reps: int
    codes: list[str]
    machine: str
    started: str
    load_before: str
    load_after: str = ""
    launches: list[Launch] = field(default_factory=list)


# ---- one launch ----------------------------------------------------------------------------


class Bench:
    """The reference repository, sealed, its snapshot worktrees in a scratch directory, and one
    interpreter (with PYTHONPATH) per variant's code."""

    def __init__(self, size: refrepo.Size, root: Path, codes: list[Path]) -> None:
        self.env = sealed_environment(root / "home")
        self.env.pop("PYTHONPATH", None)
        self.size = size
        self.repo = refrepo.prepare(root, size, self.env)
        # the launcher's own setting rather than `git config slurm.worktreeDir`: the
        # repository's config stays as run.py left it
        self.worktrees = root / size.name / "slurm-launch"
        shutil.rmtree(self.worktrees, ignore_errors=True)
        self.upstream = bench_venvs.venv("upstream", bench_venvs.UPSTREAM, say)
        self.git_slurm = bench_venvs.venv("git-slurm", bench_venvs.git_slurm_requirements(), say)
        self.codes: dict[str, Path] = {}
        for source in codes:
            label = bench_venvs.code_label(source)
            self.codes[label] = bench_venvs.code_copy(source, label)

    def clean_up(self) -> None:
        """The repository as prepare() leaves it: no snapshot or sweep dir of ours."""
        refrepo.reset(self.repo, self.size, self.env)
        shutil.rmtree(self.worktrees, ignore_errors=True)

    def command(self, variant: Variant, jobs: int, name: str) -> tuple[list[str], dict[str, str]]:
        python = self.upstream if variant.kind == "upstream" else self.git_slurm
        argv = [
            str(python), "train.py", "-m", "hydra/launcher=submitit_slurm", f"seed=range({jobs})",
            "+hydra.launcher.additional_parameters.hold=true", f"hydra.launcher.name={name}",
            f"hydra.sweep.dir=multirun/{name}",
        ]  # fmt: skip
        env = dict(self.env)
        if variant.kind != "upstream":
            on = str(variant.kind in SNAPSHOT_KINDS).lower()
            argv += [
                f"hydra.launcher.snapshot.enabled={on}",
                "hydra.launcher.snapshot.push_to_remote=false",
                f"hydra.launcher.snapshot.worktree_dir={self.worktrees}",
            ]
            env["PYTHONPATH"] = str(self.codes[variant.code])
        return argv, env


def launch(bench: Bench, variant: Variant, jobs: int) -> Launch:
    """One timed launch, its queue checked, its jobs cancelled and its sweep dir removed."""
    name = f"gs-bench-{uuid.uuid4().hex[:10]}"
    before = snapshot_branches(bench.repo, bench.env)
    load = os.getloadavg()[0]
    argv, env = bench.command(variant, jobs, name)
    try:
        started, got = timed_launch(argv, bench.repo, env)
        slurm_job = check_queue(name, got["ids"])
    finally:
        cancel(name)
    shutil.rmtree(bench.repo / "multirun" / name, ignore_errors=True)
    made = len(snapshot_branches(bench.repo, bench.env) - before)
    snapshot_on = variant.kind in SNAPSHOT_KINDS
    if made != int(snapshot_on):
        raise BenchError(f"launch {name} made {made} snapshots, expected {int(snapshot_on)}")
    reused = got["marks"].get("reused")
    if snapshot_on and reused != float(variant.kind == "reused"):
        raise BenchError(f"{variant.name}: the snapshot's reused flag was {reused}")
    return split(variant, jobs, started, got, slurm_job, load)


def split(
    variant: Variant, jobs: int, started: float, got: dict[str, Any], slurm_job: str, load: float
) -> Launch:
    marks, sums, cpu = got["marks"], got["sums"], got["cpu"]
    launcher = marks["queued"] - marks["launch"]
    snapshot, pickling, sbatch = (
        sums.get(f"{what}.launcher", 0.0) for what in ("snapshot", "pickle", "sbatch")
    )
    return Launch(
        variant=variant.name,
        kind=variant.kind,
        code=variant.code,
        jobs=jobs,
        total=marks["queued"] - started,
        startup=marks["sweep"] - started,
        sweeper=marks["launch"] - marks["sweep"],
        sweeper_compose=sums.get("compose.sweeper", 0.0),
        launcher=launcher,
        snapshot=snapshot,
        compose=sums.get("compose.launcher", 0.0),
        pickling=pickling,
        sbatch=sbatch,
        per_job=launcher - snapshot - pickling - sbatch,
        slurm_job=slurm_job,
        load=load,
        cpu_total=cpu["queued"],
        cpu_startup=cpu["sweep"],
        cpu_sweeper=cpu["launch"] - cpu["sweep"],
        cpu_launcher=cpu["queued"] - cpu["launch"],
        capture=sums.get("capture.sweeper", 0.0),
    )


def timed_launch(argv: list[str], repo: Path, env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    """(start time, what launch_marks.py reported) of a launch, killed once it has queued.

    The launch runs in its own session, so that it (and the sbatch it may be running) is killed
    before its jobs are cancelled, also when this run is interrupted: none is submitted after.
    """
    read, write = os.pipe()
    env = dict(env, GS_BENCH_MARKS_FD=str(write))
    with tempfile.TemporaryFile("w+") as out:
        started = time.time()
        proc = subprocess.Popen(
            argv, cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, pass_fds=(write,), start_new_session=True,
        )  # fmt: skip
        os.close(write)
        try:
            report = read_report(read)
        finally:
            os.close(read)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if report is None:
            out.seek(0)
            say(f"{' '.join(argv)} ended ({proc.returncode}) before queuing:\n{out.read()[-3000:]}")
            raise BenchError("a launch did not queue its jobs (above)")
    return started, report


def read_report(fd: int) -> Optional[dict[str, Any]]:
    """The hook's one JSON line, or None when the launch ended (or hung) without one."""
    data = b""
    deadline = time.monotonic() + LAUNCH_DEADLINE
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            return None
        data += chunk
    report: dict[str, Any] = json.loads(data)
    return report


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


def check_queue(name: str, logged: list[str]) -> str:
    """The id of the launch's job (or array) once squeue shows exactly the held jobs of that
    name that submitit returned, one per task, in one submission; BenchError otherwise."""
    rows = [line.split() for line in slurm(["squeue", "-h", "-r", "-n", name, "-o", "%i %T %r"])
            .splitlines()]  # fmt: skip
    ids = sorted(row[0] for row in rows)
    held = all(row[1:] == ["PENDING", "JobHeldUser"] for row in rows)
    arrays = {job_id.split("_")[0] for job_id in ids}
    one_launch = len(arrays) == 1 and (len(ids) == 1 or all("_" in job_id for job_id in ids))
    if ids != sorted(logged) or not held or not one_launch:
        raise BenchError(
            f"launch {name}: expected {len(logged)} held job(s) in one submission, with the ids "
            f"submitit returned; squeue lists {rows[:5]}{'...' if len(rows) > 5 else ''}"
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


def blocks(codes: list[str], kinds: list[str]) -> list[list[Variant]]:
    """The variants in the groups that run back to back: fresh, reused and edited build on each
    other's snapshot (reused and edited need fresh); upstream and each off launch stand alone."""
    groups = [[Variant("upstream")]] if "upstream" in kinds else []
    for code in codes:
        if "off" in kinds:
            groups.append([Variant("off", code)])
        chain = [Variant(kind, code) for kind in SNAPSHOT_KINDS if kind in kinds]
        if chain:
            groups.append(chain)
    return groups


def rotated(groups: list[list[Variant]], rep: int) -> list[list[Variant]]:
    shift = rep % len(groups)
    return groups[shift:] + groups[:shift]


def run_group(bench: Bench, group: list[Variant], jobs: int) -> list[Launch]:
    launches = []
    edited = bench.repo / EDITED
    for variant in group:
        if variant.kind == "fresh":
            refrepo.remove_snapshots(bench.repo, bench.env)
        if variant.kind != "edited":
            launches.append(launch(bench, variant, jobs))
            continue
        original = edited.read_bytes()
        edited.write_bytes(original + b"# one more line\n")
        try:
            launches.append(launch(bench, variant, jobs))
        finally:
            edited.write_bytes(original)
        refrepo.remove_snapshots(bench.repo, bench.env)
    return launches


def measure(bench: Bench, jobs: list[int], reps: int, kinds: list[str]) -> Results:
    codes = list(bench.codes)
    results = Results(
        bench.size.name, jobs, reps, codes, machine(), dt.datetime.now().isoformat(),
        load_average(),
    )  # fmt: skip
    say("warming up (one untimed 1-job launch per interpreter: byte-code caches, page cache)")
    for variant in [Variant("upstream"), *(Variant("off", code) for code in codes)]:
        launch(bench, variant, 1)
    for rep in range(reps):
        for n in jobs:
            for group in rotated(blocks(codes, kinds), rep):
                results.launches += run_group(bench, group, n)
            say(f"repetition {rep + 1}/{reps}, {n} jobs done; load {load_average()}")
    results.load_after = load_average()
    return results


def main(argv: Optional[list[str]] = None) -> int:
    args = parse(argv)
    # a plain `kill` should still cancel the held jobs: the `finally` blocks run on SystemExit
    signal.signal(signal.SIGTERM, _exit_on_signal)
    size = refrepo.SIZES[args.size]
    try:
        check_cluster()
        bench = Bench(size, Path(args.root), [Path(code).resolve() for code in args.code])
        try:
            say(f"reference repository: {bench.repo} ({size.name}); load {load_average()}")
            results = measure(bench, args.jobs, args.reps, args.kinds)
        finally:
            bench.clean_up()
    except (BenchError, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    text = report(results)
    write_report(text, asdict(results), args.markdown, args.json)
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
    parser.add_argument("--small", action="store_true", help="CI smoke run")
    parser.add_argument("--size", choices=sorted(refrepo.SIZES))
    parser.add_argument("--reps", type=int, help="launches of every variant (default 3)")
    parser.add_argument("--jobs", type=job_counts, help="jobs per launch (default 1,100,1000)")
    parser.add_argument("--code", action="append", help="checkout to compare (repeatable)")
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help=f"variants to run (default {','.join(KINDS)})"
    )
    parser.add_argument("--root", default=str(refrepo.DEFAULT_ROOT))
    parser.add_argument("--json", help="write every launch here")
    parser.add_argument("--markdown", help="write the report here")
    args = parser.parse_args(argv)
    small = args.small or args.size == "small"
    args.size = args.size or ("small" if small else "full")
    args.reps = args.reps or (1 if small else 3)
    args.jobs = args.jobs or ([1, 10] if small else [1, 100, 1000])
    args.code = args.code or [str(bench_venvs.CHECKOUT)]
    args.kinds = args.kinds.split(",")
    if args.reps < 1:
        parser.error("--reps must be >= 1")
    chain = [kind for kind in SNAPSHOT_KINDS if kind in args.kinds]
    if (
        set(args.kinds) - set(KINDS)
        or "upstream" not in args.kinds
        or chain[:1]
        not in (
            [],
            ["fresh"],
        )
    ):
        parser.error(f"--kinds: from {','.join(KINDS)}; upstream always; reused, edited need fresh")
    return args


def say(text: str) -> None:
    print(f"[slurm-launch] {text}", file=sys.stderr, flush=True)


# ---- report --------------------------------------------------------------------------------

COLUMNS = """\
Columns (medians, min - max over the repetitions): *total* runs from the command's start until
submitit's map_array returned, when sbatch has accepted every job (squeue then listed them all,
held; checked). *start-up*: Python, imports, Hydra composing the primary config, until Hydra's
basic sweeper starts. *sweeper*: until it calls the launcher; it composes every job's config
once to check the batch (*of which composing*): Hydra's time, the same for every launcher.
*launcher*: from the launcher's call until the jobs are queued; split into *snapshot*
(git_slurm.launch.take_launch_snapshot; where the launcher starts the snapshot at its setup,
what of it the first launch still waited for, PendingSnapshot.result, and, after a `+`, how long
setup waited until the tree was recorded, which is part of start-up), *per-job work* (the
rest: composing each job's config again (*of which composing*, Hydra's load_sweep_config),
logging, building the jobs' objects, moving the pickles), *pickling* (submitit's
DelayedSubmission.dump, one per job) and *sbatch*.
The split comes from launch_marks.py, loaded into each launch by its venv (no product code is
changed); times are wall clock, so on a loaded machine every column includes waiting for a
core. *ratio* is the median total over upstream's median total at the same job count. *CPU*:
the CPU seconds (user + system, with git and sbatch) spent until the jobs were queued, and
until each phase's end (medians): what the launch costs without the waiting for a core, so the
fairer comparison while the machine is shared."""


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.2f} s"


def spread(values: list[float]) -> str:
    """median (min - max); just the value for one repetition"""
    if len(values) == 1:
        return seconds(values[0])
    low, high = seconds(min(values)), seconds(max(values))
    return f"{seconds(statistics.median(values))} ({low} - {high})"


def median_of(launches: list[Launch], what: str) -> float:
    return statistics.median(float(getattr(x, what)) for x in launches)


def order(results: Results) -> list[str]:
    names = [Variant("upstream").name]
    for code in results.codes:
        names += [Variant(kind, code).name for kind in ("off", *SNAPSHOT_KINDS)]
    return names


def report(results: Results) -> str:
    lines = [
        f"### Launch time on SLURM against upstream ({results.size} reference repository)",
        "",
        "`train.py -m seed=range(N) hydra/launcher=submitit_slurm`, jobs submitted held, on the "
        "single-node SLURM cluster of this machine; hydra-core 1.3.2 and submitit 1.5.4 in both "
        f"venvs. {results.reps} launch(es) of each variant and job count, taking turns in an "
        "order rotated every repetition.",
        f"Machine: {results.machine}. Load average (1/5/15 min) before: {results.load_before}, "
        f"after: {results.load_after}. {results.started[:16]}.",
        "",
        "| jobs | variant | total | ratio | start-up | sweeper (of which composing) | launcher "
        "| snapshot | per-job work (of which composing) | pickling | sbatch | CPU: total, ratio "
        "| CPU: start-up / sweeper / launcher |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for jobs in results.jobs:
        at = [x for x in results.launches if x.jobs == jobs]
        upstream = [x for x in at if x.kind == "upstream"]
        base = median_of(upstream, "total")
        cpu_base = median_of(upstream, "cpu_total")
        for name in order(results):
            got = [x for x in at if x.variant == name]
            if not got:
                continue
            col = {what: spread([getattr(x, what) for x in got]) for what in asdict(got[0])
                   if isinstance(getattr(got[0], what), float)}  # fmt: skip
            snapshot = col["snapshot"] if got[0].kind in SNAPSHOT_KINDS else "-"
            if got[0].kind in SNAPSHOT_KINDS and median_of(got, "capture") > 0:
                snapshot += f" + {seconds(median_of(got, 'capture'))}"
            composing = [seconds(median_of(got, what)) for what in ("sweeper_compose", "compose")]
            lines.append(
                f"| {jobs} | {name} | {col['total']} | {median_of(got, 'total') / base:.2f}x "
                f"| {col['startup']} | {col['sweeper']} ({composing[0]}) | {col['launcher']} "
                f"| {snapshot} | {col['per_job']} ({composing[1]}) | {col['pickling']} "
                f"| {col['sbatch']} | {seconds(median_of(got, 'cpu_total'))}, "
                f"{median_of(got, 'cpu_total') / cpu_base:.2f}x | "
                + " / ".join(
                    seconds(median_of(got, what))
                    for what in ("cpu_startup", "cpu_sweeper", "cpu_launcher")
                )
                + " |"
            )
    lines += ["", COLUMNS]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
