"""Sweepers that launch in batches (the real hydra-optuna-sweeper with `n_jobs`, Hydra's basic
sweeper with `max_batch_size`) call the launcher once per batch, possibly hours apart: every
batch of one `-m` command runs the first batch's snapshot, code and config.

Trials 0 and 1 (the first batch) wait until the test has edited code and YAML in the checkout;
trials 2 and 3 are launched only after that. The same sweep with the snapshot off is the
control: its second batch sees every edit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gitrepo import Repo
from launcher_apps.support import make_app_repo, results
from test_launcher_e2e import SNAPSHOT, edit_once_both_wait, snapshot_of, worktree_record

SWEEPERS = {
    "optuna": [
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",
        "seed=range(0,100)",
    ],
    "basic-max-batch-size": ["hydra.sweeper.max_batch_size=2", "seed=0,1,2,3"],
}
EDITS = {"helper.py": 'VERSION = "new"\n', "late.py": 'VERSION = "new"\n'}


def edit_checkout(app: Path) -> None:
    for rel, text in EDITS.items():
        (app / rel).write_text(text, encoding="utf-8")
    config = app / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("value: old", "value: new"), encoding="utf-8")


def run_batches(tmp_path: Path, app: Path, *overrides: str) -> list[dict[str, Any]]:
    """Run a 4-trial sweep in batches of 2, editing the checkout while batch 1 runs."""
    markers, release = tmp_path / "markers", tmp_path / "release"
    markers.mkdir()
    log = tmp_path / "launch.log"
    argv = [
        sys.executable,
        "trial.py",
        "-m",
        *overrides,
        f"markers={markers}",
        f"release={release}",
        "+hold_below=2",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=app, stdout=out, stderr=subprocess.STDOUT)

    def first_batch_started_then_edit(app: Path) -> None:
        assert sorted(p.name for p in markers.glob("started-*")) == ["started-0", "started-1"]
        edit_checkout(app)

    edit_once_both_wait(
        app, proc, markers, release, log, first_batch_started_then_edit, "started", timeout=300
    )
    got = sorted(results(app / "multirun"), key=lambda r: r["num"])
    assert [r["num"] for r in got] == [0, 1, 2, 3], log.read_text()
    return got


def assert_one_snapshot_for_all(repo: Repo, got: list[dict[str, Any]]) -> None:
    snaps = [snapshot_of(r) for r in got]
    assert all(s == snaps[0] for s in snaps)
    assert repo.git("branch", "--list", "slurm-job-*").split() == [snaps[0]["branch"]]
    for r in got:
        assert (r["value"], r["helper"], r["late"]) == ("old", "old", "old"), r
        assert r["cwd"] == snaps[0]["workdir"]
        assert r["commit_env"] == snaps[0]["commit"]
    assert len(worktree_record(repo.path, snaps[0]["worktree"])["jobs"]) == 4


@pytest.mark.parametrize("sweeper", sorted(SWEEPERS))
def test_every_batch_runs_the_first_batchs_snapshot(tmp_path: Path, sweeper: str) -> None:
    repo, app = make_app_repo(tmp_path / "project")
    got = run_batches(tmp_path, app, *SWEEPERS[sweeper], "hydra/launcher=submitit_local", *SNAPSHOT)
    assert_one_snapshot_for_all(repo, got)


@pytest.mark.parametrize("sweeper", sorted(SWEEPERS))
def test_control_without_snapshot_later_batches_see_the_edits(tmp_path: Path, sweeper: str) -> None:
    _, app = make_app_repo(tmp_path / "project")
    got = run_batches(tmp_path, app, *SWEEPERS[sweeper], "hydra/launcher=submitit_local")
    assert [(r["value"], r["late"]) for r in got[2:]] == [("new", "new")] * 2


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_slurm_every_optuna_batch_runs_the_first_batchs_snapshot(tmp_path: Path) -> None:
    repo, app = make_app_repo(tmp_path / "project")
    got = run_batches(
        tmp_path,
        app,
        *SWEEPERS["optuna"],
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.timeout_min=5",
        *SNAPSHOT,
    )
    assert_one_snapshot_for_all(repo, got)
    jobs = worktree_record(repo.path, snapshot_of(got[0])["worktree"])["jobs"]
    assert [job["kind"] for job in jobs] == ["slurm"] * 4
    assert len({job["id"].split("_")[0] for job in jobs}) == 2  # one array per batch
