"""A Hydra sweep on `submitit_local` with and without the snapshot, launched from the reference
repository's `train.py`: how many snapshots one launch makes (must be 1, whatever the number of
jobs) and what the launcher adds besides the snapshot.

The launches use `hydra.launcher.wait=false`, so their wall time is the launch itself (compose,
snapshot, submit, record) and not the jobs; the jobs are waited for, untimed, before the next
launch so that they don't load the machine during it.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import run

TOOK = re.compile(r"git-slurm: snapshot (\S+) .* took ([0-9.]+) s")
JOB_LINE = re.compile(r"^\[([0-9-]+ [0-9:]+,[0-9]+)\]\[HYDRA\] \t#[0-9]+ : ", re.MULTILINE)


@dataclass(frozen=True)
class Launch:
    seconds: float  # wall time of the launching process
    to_submit: float  # from its start to its last "#N : overrides" line, just before submitting
    snapshots: int  # snapshot branches it made
    snapshot_seconds: float  # what the launcher reported `git slurm-snapshot` took


def launch(repo: Path, env: dict[str, str], jobs: int, tag: str, snapshot: bool) -> Launch:
    """One `python train.py -m seed=range(jobs)` launch; waits for its jobs, untimed.

    Its wall time includes the jobs it already started, which compete for the CPU with it
    while it submits the rest (each is a Python process importing Hydra). The time to its
    last job line does not: the launcher logs every job's overrides before it submits any.
    """
    before = snapshot_branches(repo, env)
    argv = [
        sys.executable, "train.py", "-m", "hydra/launcher=submitit_local",
        f"seed=range({jobs})", "hydra.launcher.wait=false", f"hydra.sweep.dir=multirun/{tag}",
        f"hydra.launcher.snapshot.enabled={str(snapshot).lower()}",
        "hydra.launcher.snapshot.push_to_remote=false",
    ]  # fmt: skip
    started = time.time()
    ran = run(argv, repo, env)
    made = len(snapshot_branches(repo, env) - before)
    took = TOOK.search(ran.stdout)
    wait_for_jobs(repo / "multirun" / tag, jobs)
    return Launch(
        seconds=ran.seconds,
        to_submit=_last_job_line(ran.stdout) - started,
        snapshots=made,
        snapshot_seconds=float(took.group(2)) if took else 0.0,
    )


def _last_job_line(log: str) -> float:
    stamps = JOB_LINE.findall(log)
    if not stamps:
        raise RuntimeError(f"no job lines in the launch log: {log[-2000:]}")
    return dt.datetime.strptime(stamps[-1], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def snapshot_branches(repo: Path, env: dict[str, str]) -> set[str]:
    out = run(["git", "for-each-ref", "--format=%(refname)", "refs/heads/slurm-job-*"], repo, env)
    return set(out.stdout.split())


def wait_for_jobs(sweep_dir: Path, jobs: int, timeout: float = 900.0) -> None:
    """Until every job left its submitit result (the launch returned while they ran)."""
    deadline = time.monotonic() + timeout
    while len(list(sweep_dir.glob(".submitit/*/*_result.pkl"))) < jobs:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the jobs of {sweep_dir} did not finish in {timeout:.0f} s")
        time.sleep(0.5)
