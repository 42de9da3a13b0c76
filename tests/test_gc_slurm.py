"""`git slurm-gc` against the real SLURM cluster (tests/slurm/cluster.sh): a pending job keeps
its worktree whatever the age; once the job has ended, the worktree goes. SLURM is asked with
one squeue call (and at most one sacct call) per gc run."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gitrepo import Repo, run_tool
from slurm_support import wait_for_job_state

from git_slurm.records import JobRef, add_jobs

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

TIMEOUT = 60.0


def slurm(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture
def jobs() -> Iterator[list[str]]:
    """Ids of submitted jobs; any still queued at the end is cancelled."""
    submitted: list[str] = []
    yield submitted
    if submitted:
        subprocess.run(["scancel", *submitted], capture_output=True, timeout=30, check=False)


@pytest.fixture
def call_log(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A PATH on which squeue and sacct log each call, then run the real client."""
    wrap, log = tmp_path / "wrap", tmp_path / "slurm-calls"
    wrap.mkdir()
    for name in ("squeue", "sacct"):
        real = subprocess.run(["which", name], capture_output=True, text=True, check=True)
        script = wrap / name
        script.write_text(f'#!/bin/sh\necho {name} >> {log}\nexec {real.stdout.strip()} "$@"\n')
        script.chmod(0o755)
    yield log, {"PATH": f"{wrap}{os.pathsep}{os.environ['PATH']}"}


def gc(repo: Repo, env: dict[str, str]) -> dict[str, Any]:
    res = run_tool("slurm-gc", "--json", "--older-than", "0m", cwd=repo.path, env=env)
    assert res.returncode == 0, res.stderr
    (only,) = res.json()["worktrees"]
    return dict(only)


def test_a_held_job_keeps_its_worktree_until_it_has_ended(
    repo: Repo, tmp_path: Path, jobs: list[str], call_log: tuple[Path, dict[str, str]]
) -> None:
    log, env = call_log
    worktree = Path(repo.snapshot_json()["worktree"])
    out = slurm("sbatch", "--parsable", "--hold", f"--chdir={tmp_path}", "--wrap", "true")
    job = out.strip().split(";")[0]
    jobs.append(job)
    add_jobs(worktree, [JobRef(id=job, kind="slurm")])

    kept = gc(repo, env)
    assert (kept["action"], kept["detail"]) == ("kept", f"live job {job} PENDING")
    assert worktree.is_dir()
    assert log.read_text().split() == ["squeue"]

    slurm("scontrol", "release", job)
    assert wait_for_job_state(job, {"COMPLETED"}, TIMEOUT) == "COMPLETED"
    removed = gc(repo, env)
    assert (removed["action"], removed["jobs"][0]["state"]) == ("removed", "COMPLETED")
    assert not worktree.exists()
    assert log.read_text().split() == ["squeue", "squeue"]  # still listed: no sacct needed
