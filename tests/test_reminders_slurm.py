"""The reminder on the real SLURM cluster: a worktree a live job works in is not called stale,
recorded or not (the same second source of truth as `git slurm-gc`)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from gitrepo import Repo
from slurm_support import wait_for_job_state
from test_gc import age

from git_slurm import reminders
from git_slurm.records import snapshot_worktrees
from git_slurm.repo import discover

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]
DAY = 86400.0


def test_a_hand_submitted_job_keeps_its_worktree_out_of_the_stale_count(repo: Repo) -> None:
    worktree = Path(repo.snapshot_json()["worktree"])
    age(worktree, 30 * DAY)
    out = subprocess.run(
        ["sbatch", "--parsable", "--hold", f"--chdir={worktree}", "--wrap", "true"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    job = out.strip().split(";")[0]
    common = repo.path / ".git"
    try:
        reminders.refresh_cache(common, time.time() - 7 * DAY)
        said = reminders.gather(discover(repo.path))
        assert said is not None and said.stale.count == 0
    finally:
        subprocess.run(["scancel", job], capture_output=True, timeout=30, check=False)
    wait_for_job_state(job, {"CANCELLED"}, 60)
    reminders.refresh_cache(common, time.time() - 7 * DAY)
    said = reminders.gather(discover(repo.path))
    assert said is not None and said.stale.count == 1
    assert len(snapshot_worktrees(common)) == 1
