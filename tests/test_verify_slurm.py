"""A job never runs code that differs from its commit, on the real SLURM cluster, whose jobs
run as root (root ignores the read-only bits of snapshot files): a job that writes into its
code in place changes every snapshot sharing that file by a hard link, and a job that runs
`sed -i` on its code leaves an edited worktree behind. Neither reaches another job."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from launcher_apps.support import run_app
from slurm_support import CALL_TIMEOUT, wait_for_job_state
from test_launcher_slurm import cancel_named, job_ids_named, unique_name
from test_verify import EDITED, SNAPSHOT, make_app

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

SLURM = ["hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=5"]
HELD = ["hydra.launcher.wait=false", "+hydra.launcher.additional_parameters.hold=true"]
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"}


def launch(app: Path, name: str, *overrides: str) -> list[str]:
    """Launch the app's jobs on SLURM with the snapshot on; their ids."""
    done = run_app(app, *SLURM, *SNAPSHOT, f"hydra.launcher.name={name}", *overrides, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return sorted(job_ids_named(name))


def run_to_end(job_ids: list[str]) -> None:
    """Release a held array (its tasks start together) and wait for every task to end."""
    array = job_ids[0].split("_")[0]
    subprocess.run(["scontrol", "release", array], check=True, timeout=CALL_TIMEOUT)
    for job_id in job_ids:
        assert wait_for_job_state(job_id, ENDED, 180) == "COMPLETED", job_id


def snapshot_worktrees(repo: Path) -> list[Path]:
    """The snapshot worktrees, oldest first (their names are their branches: time-ordered)."""
    return sorted((repo / ".git" / "slurm-snapshots").iterdir())


def job_log(app: Path, job_id: str) -> str:
    (err,) = app.rglob(f".submitit/*/{job_id}_0_log.err")
    return err.read_text()


def result(out: Path, tag: str) -> Any:
    return json.loads((out / f"{tag}.json").read_text())


def test_a_root_job_writing_through_a_hard_link_does_not_reach_a_queued_job(
    tmp_path: Path,
) -> None:
    repo = make_app(tmp_path / "project")
    out = tmp_path / "results"
    out.mkdir()
    first, second = unique_name("verify-s1"), unique_name("verify-s2")
    tags = ["s2a", "s2b", "s2c", "s2d"]
    try:
        s1_job = launch(repo.path, first, *HELD, f"out={out}", "tag=s1", "edit=inplace")
        repo.write("other.py", "OTHER = 1\n")  # a new tree: S2 is linked from S1
        s2_jobs = launch(repo.path, second, *HELD, f"out={out}", f"tag={','.join(tags)}")
        assert len(s2_jobs) == len(tags)  # one array: its tasks start at once when released
        s1, s2 = snapshot_worktrees(repo.path)
        assert (s1 / "helper.py").stat().st_ino == (s2 / "helper.py").stat().st_ino

        run_to_end(s1_job)  # S1's job imports helper, then writes into it in place
        assert (s2 / "helper.py").read_text() == EDITED  # S2's queued code changed with it
        run_to_end(s2_jobs)
    finally:
        cancel_named(first)
        cancel_named(second)

    assert result(out, "s1")["version"] == "old"
    for tag in tags:
        ran = result(out, tag)
        assert ran["version"] == "old", tag  # every job of S2 ran S2's code
        assert Path(ran["file"]).parent == s2
    logs = [job_log(repo.path, job_id) for job_id in s2_jobs]
    said = [log for log in logs if "restored from git's object store" in log]
    assert len(said) == 1, logs  # one restored it; the others found it done under the lock
    assert "helper.py (modified)" in said[0] and s2.name in said[0]  # which file, which snapshot
    assert (s2 / "helper.py").read_text() == "VERSION = 'old'\n"
    assert (s1 / "helper.py").read_text() == EDITED  # S1's own worktree: its jobs' business


def test_a_job_s_sed_i_is_not_reused_by_the_next_launch_of_the_same_tree(tmp_path: Path) -> None:
    repo = make_app(tmp_path / "project")
    out = tmp_path / "results"
    out.mkdir()
    first, second = unique_name("verify-sed-a"), unique_name("verify-sed-b")
    try:
        launch(repo.path, first, f"out={out}", "tag=a", "edit=sed")  # waits for its job
        launch(repo.path, second, f"out={out}", "tag=b")  # nothing changed in the checkout
    finally:
        cancel_named(first)
        cancel_named(second)

    a, b = result(out, "a"), result(out, "b")
    assert a["version"] == b["version"] == "old"
    assert a["cwd"] != b["cwd"]  # a new worktree, not the one the first job edited
    edited, fresh = snapshot_worktrees(repo.path)
    assert (edited / "helper.py").read_text() == EDITED
    assert (fresh / "helper.py").read_text() == "VERSION = 'old'\n"


def test_a_root_job_s_edit_hidden_by_an_index_flag_does_not_reach_the_next_job(
    tmp_path: Path,
) -> None:
    """Job 0 of an array run one task at a time flags `helper.py` assume-unchanged and writes
    into it; job 1, on the same worktree, still runs the snapshot's code (the check line,
    grep included, runs on the node)."""
    repo = make_app(tmp_path / "project")
    out = tmp_path / "results"
    out.mkdir()
    name = unique_name("verify-hidden")
    one_at_a_time = ["hydra.launcher.array_parallelism=1", "edit=hidden,none", "tag=${edit}"]
    try:
        (job0, job1) = launch(repo.path, name, *HELD, f"out={out}", *one_at_a_time)
        run_to_end([job0, job1])
    finally:
        cancel_named(name)

    assert result(out, "hidden")["version"] == "old"  # job 0 imported, then edited
    assert result(out, "none")["version"] == "old"
    assert "helper.py (hidden from git's diff by an index flag)" in job_log(repo.path, job1)
