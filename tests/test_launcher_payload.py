"""A launch pickles what its jobs share (the launcher, its configs, Hydra's singleton state) once
for the whole array; each job's own pickle holds only that payload's path and the job's own
overrides, num and id, and each job still runs with exactly those."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from launcher_apps.support import make_app_repo, run_app
from omegaconf import OmegaConf
from test_launcher_e2e import SNAPSHOT

from hydra_plugins.git_slurm_launcher._shared_payload import SharedPayloadJob


@pytest.mark.parametrize("snapshot", [True, False], ids=["snapshot", "no-snapshot"])
def test_shared_state_is_pickled_once_and_each_job_keeps_its_own(
    tmp_path: Path, snapshot: bool
) -> None:
    _, app = make_app_repo(tmp_path / "project")
    flags = SNAPSHOT if snapshot else []
    done = run_app(app, "seed=10,11,12", "hydra/launcher=submitit_local", *flags)
    assert done.returncode == 0, done.stderr
    (sweep,) = (app / "multirun").glob("*/*")
    submitted = sorted(sweep.glob(".submitit/*/*_submitted.pkl"))
    assert len(submitted) == 3
    calls = [pickle.loads(p.read_bytes()) for p in submitted]
    functions = {call.function for call in calls}
    assert len(functions) == 1  # one payload for the array
    (shared,) = functions
    assert isinstance(shared, SharedPayloadJob)
    assert Path(shared.payload).parent == sweep / ".submitit"
    own = sorted((call.args[2], call.args[0]) for call in calls)
    assert own == [(0, ["seed=10"]), (1, ["seed=11"]), (2, ["seed=12"])]
    assert all(len(call.args) == 4 for call in calls)  # no singleton state per job
    for num in range(3):
        job = sweep / str(num) / ".hydra"
        hydra = OmegaConf.load(job / "hydra.yaml").hydra
        assert OmegaConf.load(job / "config.yaml").seed == 10 + num
        assert hydra["job"]["num"] == num
        assert hydra["overrides"]["task"] == [f"seed={10 + num}"]
        log_dir = sweep / ".submitit" / str(hydra["job"]["id"])
        assert log_dir.is_dir()  # the job's id is its own submitit job id
