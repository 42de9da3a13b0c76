"""How much a git-slurm snapshot costs, against a plain checkout and the usual alternatives.

    .venv/bin/python benchmarks/run.py                 # the reference repository (~5-15 min)
    .venv/bin/python benchmarks/run.py --size small    # a smoke run for CI (well under 1 min)

Options: --reps N (default 5; 2 for small), --sweep-reps N (the slow cases: 30 clones and the
Hydra sweep; default 3; 1 for small), --no-hydra, --root DIR (default /tmp/git-slurm-bench:
the reference repository is built there once per size and reused), --json FILE, --markdown FILE,
--check (exit 1 when a target is missed; the targets are for the full size), --drop-caches
(root: drop the page cache before each timed case that writes files; on the reference VM file
creation is several times cheaper right after, while Python's imports become cold reads).

Needs git >= 2.25, rsync (Debian: `apt-get install rsync`), and this repository installed in
the running interpreter's environment (`make` does it): hydra-core and submitit for the sweep.
Installs nothing itself.

Every case runs once per repetition, in an order rotated each time, so the machine's mood
(other processes, disk writeback) falls on all of them alike; the table has medians and
min-max, and ratios to `git worktree add --detach HEAD` measured in the same run. What a case
leaves behind is removed and flushed (`sync`) untimed, before the next one starts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import approaches
import cases
import refrepo
import sweep
from common import (
    Series,
    can_drop_caches,
    load_average,
    machine,
    run,
    seal_this_process,
    sealed_environment,
    settings,
    write_report,
)

CAPTURE_PAIRS = 5  # capture/status pairs per repetition: both are short, noise is not


@dataclass
class Results:
    """Everything one run measured, raw."""

    size: str
    jobs: int  # of the Hydra sweep
    drop_caches: bool
    machine: str
    started: str
    load_before: str
    load_after: str = ""
    series: dict[str, Series] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    launches: dict[str, list[sweep.Launch]] = field(default_factory=dict)
    disk: Optional[cases.Disk] = None
    memory: Optional[cases.Memory] = None

    def add(self, name: str, seconds: float) -> None:
        self.series.setdefault(name, Series(name)).seconds.append(seconds)

    def peak(self, name: str, mb: float) -> None:
        self.peak_rss_mb[name] = max(self.peak_rss_mb.get(name, 0.0), mb)


BASELINE = "git worktree add --detach HEAD"
BASELINE_PARALLEL = "the same with -c checkout.workers=0 (one per core)"
PARALLEL = ("-c", "checkout.workers=0")
FRESH = "git slurm-snapshot, fresh tree"
REUSE = "git slurm-snapshot, same tree again (reuse)"
INCREMENTAL = "git slurm-snapshot, one file edited (incremental)"
CAPTURE = "capture alone (in-process)"
STATUS = "git status --porcelain"
STARTUP = "git slurm-snapshot start-up alone (refused at its first check)"
FLOOR = "python -c 'import plumbum' (the start-up floor)"
FLOOR_MARGIN = 0.060  # issue 14.4: an unchanged tree within 60 ms of the floor
RSYNC = "shallow clone + rsync --files-from (per launch)"


def per_job(jobs: int) -> str:
    return f"per-job clone, {jobs}-job sweep (launch + {jobs} clones)"


def table_order() -> list[str]:
    return [
        BASELINE, BASELINE_PARALLEL, FRESH, REUSE, INCREMENTAL, STARTUP, FLOOR, CAPTURE, STATUS,
        RSYNC,
        per_job(3), per_job(30),
    ]  # fmt: skip


class Bench:
    """The reference repository, the sealed environment, and the cases that run on them."""

    def __init__(self, size: refrepo.Size, root: Path) -> None:
        home = root / "home"
        self.env = sealed_environment(home)
        seal_this_process(self.env, home)
        self.size = size
        self.repo = refrepo.prepare(root, size, self.env)
        self.scratch = root / size.name / "scratch"
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir(parents=True)
        # every copy, checkout and snapshot worktree of the run goes under one directory: on
        # ext4 where a new directory lands (a block group whose inode table is still cold, or
        # not) changes the cost of creating files there by 2x
        self.worktrees = self.scratch / "snapshots"
        run(["git", "config", "slurm.worktreeDir", str(self.worktrees)], self.repo, self.env)
        self.capture = cases.InProcessCapture(self.repo, self.worktrees)
        self.results = Results(
            size.name,
            size.sweep_jobs,
            settings["drop_caches"],
            machine(),
            dt.datetime.now().isoformat(),
            load_average(),
        )

    def baseline(self) -> None:
        self.results.add(BASELINE, approaches.worktree_add(self.repo, self.scratch, self.env))

    def parallel_baseline(self) -> None:
        """The same with git's parallel checkout, as git-slurm runs it: how much that gives."""
        seconds = approaches.worktree_add(self.repo, self.scratch, self.env, PARALLEL)
        self.results.add(BASELINE_PARALLEL, seconds)

    def snapshots(self) -> None:
        runs = cases.snapshot_sequence(self.repo, self.env)
        for name, ran in (
            (FRESH, runs.fresh),
            (REUSE, runs.reuse),
            (INCREMENTAL, runs.incremental),
        ):
            self.results.add(name, ran.seconds)
            self.results.peak(name, ran.max_rss_mb)

    def capture_and_status(self) -> None:
        for _ in range(CAPTURE_PAIRS):
            self.results.add(CAPTURE, self.capture())
            self.results.add(STATUS, cases.git_status(self.repo, self.env))
            # the floor is short and noisy: as many samples as capture's
            self.results.add(FLOOR, cases.plumbum_floor(self.repo, self.env))
        self.results.add(STARTUP, cases.startup(self.repo, self.env))

    def rsync(self) -> None:
        self.results.add(RSYNC, approaches.rsync_tracked(self.repo, self.scratch, self.env))

    def per_job(self, jobs: int) -> None:
        seconds = approaches.per_job_clone(self.repo, self.scratch, self.env, jobs)
        self.results.add(per_job(jobs), seconds)

    def hydra(self, rep: int) -> None:
        for enabled in (True, False) if rep % 2 == 0 else (False, True):
            tag = f"bench-{'on' if enabled else 'off'}-{rep}"
            launch = sweep.launch(self.repo, self.env, self.size.sweep_jobs, tag, enabled)
            self.results.launches.setdefault(tag.rsplit("-", 1)[0], []).append(launch)
            shutil.rmtree(self.repo / "multirun" / tag)
            refrepo.remove_snapshots(self.repo, self.env)

    def steps(self, rep: int, slow: bool, hydra: bool) -> list[Callable[[], None]]:
        """This repetition's cases, rotated so that each takes every place in turn."""
        steps = [self.baseline, self.snapshots, self.parallel_baseline]
        steps += [self.capture_and_status, self.rsync]
        steps.append(lambda: self.per_job(3))
        if slow:
            steps.append(lambda: self.per_job(30))
        if slow and hydra:
            steps.append(lambda: self.hydra(rep))
        shift = rep % len(steps)
        return steps[shift:] + steps[:shift]


def main(argv: Optional[list[str]] = None) -> int:
    args = parse(argv)
    if shutil.which("rsync") is None:
        print(
            "error: rsync is needed for the alternatives (apt-get install rsync)", file=sys.stderr
        )
        return 2
    if args.drop_caches and not can_drop_caches():
        print("error: --drop-caches needs root", file=sys.stderr)
        return 2
    settings["drop_caches"] = args.drop_caches
    size = refrepo.SIZES[args.size]
    reps = args.reps or (2 if args.size == "small" else 5)
    slow_reps = args.sweep_reps or (1 if args.size == "small" else 3)
    bench = Bench(size, Path(args.root))
    say(f"reference repository: {bench.repo} ({size.name}); load {load_average()}")
    for rep in range(reps):
        for step in bench.steps(rep, rep < slow_reps, not args.no_hydra):
            step()
        say(f"repetition {rep + 1}/{reps} done; load {load_average()}")
    bench.results.disk = cases.disk_use(
        bench.repo, bench.scratch, bench.worktrees, bench.env, size.disk_snapshots
    )
    bench.results.memory = cases.memory_probe(
        bench.repo, bench.scratch, bench.env, size.probe_bytes
    )
    bench.results.load_after = load_average()
    text = report(bench.results, size, reps, slow_reps)
    write_report(text, to_json(bench.results), args.markdown, args.json)
    missed = [t for t, _, ok in targets(bench.results) if not ok]
    return 1 if args.check and missed else 0


def parse(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(refrepo.SIZES), default="full")
    parser.add_argument("--reps", type=int, default=0, help="repetitions of every case")
    parser.add_argument("--sweep-reps", type=int, default=0, help="repetitions of slow cases")
    parser.add_argument("--no-hydra", action="store_true", help="skip the Hydra sweep")
    parser.add_argument(
        "--drop-caches",
        action="store_true",
        help="drop the page cache before each timed case that writes files (root only)",
    )
    parser.add_argument("--root", default=str(refrepo.DEFAULT_ROOT))
    parser.add_argument("--json", help="write every sample here")
    parser.add_argument("--markdown", help="write the report here")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a target of issues 7 and 14 is missed"
    )
    return parser.parse_args(argv)


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


# ---- report --------------------------------------------------------------------------------


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def row(results: Results, name: str) -> str:
    s = results.series[name]
    base = results.series[BASELINE].median
    ratio = f"{s.median / base:.2f}x"
    return f"| {name} | {seconds(s.median)} | {seconds(s.low)} - {seconds(s.high)} | {ratio} |"


def targets(results: Results) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each target of issues 7 and 14 that this run measured."""
    med = {name: s.median for name, s in results.series.items()}
    base = med[BASELINE]
    floor = med[FLOOR]
    found = [
        (
            "reuse (unchanged tree) ≤ start-up floor + 60 ms",
            f"{seconds(med[REUSE])} = floor {seconds(floor)} + {seconds(med[REUSE] - floor)}",
            med[REUSE] <= floor + FLOOR_MARGIN,
        ),
        (
            "incremental (one file) ≤ 0.3x worktree add",
            f"{med[INCREMENTAL] / base:.2f}x",
            med[INCREMENTAL] <= 0.3 * base,
        ),
        ("fresh ≤ 1.1x worktree add", f"{med[FRESH] / base:.2f}x", med[FRESH] <= 1.1 * base),
        (
            "capture ≤ 2x git status",
            f"{med[CAPTURE] / med[STATUS]:.2f}x",
            med[CAPTURE] <= 2 * med[STATUS],
        ),
    ]
    peak = max(results.peak_rss_mb.values())
    if results.memory is not None:
        peak = max(peak, results.memory.fresh_mb, results.memory.incremental_mb)
    found.append(("peak memory of git slurm-snapshot < 150 MB", f"{peak:.0f} MB", peak < 150))
    on = results.launches.get("bench-on", [])
    if on:
        made = sorted({launch.snapshots for launch in on})
        found.append(("one snapshot per launch", f"{made} per launch", made == [1]))
    return found


def report(results: Results, size: refrepo.Size, reps: int, slow_reps: int) -> str:
    lines = [
        f"### git-slurm snapshot benchmark ({size.name} reference repository)",
        "",
        f"{size.files + size.assets + 4} tracked files "
        f"({size.files} x {size.file_bytes // 1024} KB sources, {size.assets} x "
        f"{size.asset_bytes / 2**20:g} MB assets), ignored data/ {size.data_bytes / 2**20:g} MB"
        f" and {size.outputs} files in outputs/; dirty: {size.modified} modified, "
        f"{size.untracked} untracked, {size.deleted} deleted.",
        f"Machine: {results.machine}. Load average (1/5/15 min) before: "
        f"{results.load_before}, after: {results.load_after}. {results.started[:16]}.",
        f"{reps} repetitions ({slow_reps} for the 30-job and Hydra cases), alternating; page "
        f"cache {'dropped' if results.drop_caches else 'not dropped'} before each timed case "
        "that writes files.",
        "",
        "| case | median | min - max | x worktree add |",
        "|---|---|---|---|",
    ]
    lines += [row(results, name) for name in table_order() if name in results.series]
    lines += ["", *sweep_table(results), "", *hydra_table(results), "", *other_figures(results)]
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {'yes' if ok else 'no'} |" for t, m, ok in targets(results)]
    return "\n".join(lines)


def sweep_table(results: Results) -> list[str]:
    """What freezing the code costs a whole sweep: git-slurm's one snapshot against the rest."""
    med = {name: s.median for name, s in results.series.items()}
    lines = ["| approach | 3-job sweep | 30-job sweep |", "|---|---|---|"]
    for name, label in ((FRESH, "git-slurm, fresh"), (INCREMENTAL, "git-slurm, incremental")):
        lines.append(f"| {label} (one snapshot per launch) | {seconds(med[name])} | same |")
    lines.append(f"| rsync of tracked files (one copy per launch) | {seconds(med[RSYNC])} | same |")
    thirty = med.get(per_job(30))
    lines.append(
        f"| per-job clone | {seconds(med[per_job(3)])} | "
        f"{seconds(thirty) if thirty is not None else 'not run'} |"
    )
    return lines


def hydra_table(results: Results) -> list[str]:
    on, off = results.launches.get("bench-on", []), results.launches.get("bench-off", [])
    if not on or not off:
        return ["Hydra sweep: not run."]

    def med(values: Iterable[float]) -> float:
        return statistics.median(values)

    snap = med(x.snapshot_seconds for x in on)
    submit_on, submit_off = med(x.to_submit for x in on), med(x.to_submit for x in off)
    wall_on, wall_off = med(x.seconds for x in on), med(x.seconds for x in off)
    made = sorted({launch.snapshots for launch in on})
    return [
        f"| {results.jobs}-job sweep, submitit_local, wait=false ({len(on)} launches each) "
        "| until submitting | whole launch |",
        "|---|---|---|",
        f"| without snapshot | {seconds(submit_off)} | {seconds(wall_off)} |",
        f"| with snapshot | {seconds(submit_on)} | {seconds(wall_on)} |",
        f"| of which the snapshot (as logged) | {seconds(snap)} | {seconds(snap)} |",
        f"| launcher overhead besides the snapshot | {seconds(submit_on - submit_off - snap)} "
        f"| {seconds(wall_on - wall_off - snap)} |",
        "",
        f"Snapshots made per launch: {made}. 'Until submitting' ends at the launcher's last job "
        f"line, before any job runs; the whole launch includes starting {results.jobs} local "
        "jobs, which compete for the CPU with the launch while it submits the rest.",
    ]


def other_figures(results: Results) -> list[str]:
    lines = [
        "Peak memory (largest process of the tree): "
        + ", ".join(
            f"{name.split(', ')[-1]} {mb:.0f} MB" for name, mb in results.peak_rss_mb.items()
        )
        + "."
    ]
    if results.memory is not None:
        m = results.memory
        lines.append(
            f"With a {m.probe_mb:.0f} MB file in the tree: {m.fresh_mb:.0f} MB (capture + "
            f"checkout), {m.incremental_mb:.0f} MB (next snapshot, linked)."
        )
    if results.disk is not None:
        d = results.disk
        lines.append(
            f"Disk: {d.snapshots} snapshots one file apart use {d.snapshots_bytes / 2**20:.0f} MB "
            f"in all; one plain checkout uses {d.checkout_bytes / 2**20:.0f} MB "
            f"({d.snapshots} checkouts: {d.snapshots * d.checkout_bytes / 2**20:.0f} MB)."
        )
    return lines


def to_json(results: Results) -> dict[str, Any]:
    data = asdict(results)
    data["series"] = {name: s.seconds for name, s in results.series.items()}
    return data


if __name__ == "__main__":
    sys.exit(main())
