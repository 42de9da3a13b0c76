"""The launchers are drop-ins: same config fields and defaults as hydra-submitit-launcher 1.2.0,
and (snapshot off) byte-for-byte the same submission, checked against golden files rendered by
upstream's own launcher (tests/launcher_apps/golden/render.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from launcher_apps.golden import render
from omegaconf import OmegaConf

from hydra_plugins.git_slurm_launcher import config, launcher

GOLDEN = Path(__file__).parent / "launcher_apps" / "golden"

# hydra-submitit-launcher 1.2.0's fields and defaults (from its config.py)
UPSTREAM_BASE = {
    "submitit_folder": "${hydra.sweep.dir}/.submitit/%j",
    "timeout_min": 60,
    "cpus_per_task": None,
    "gpus_per_node": None,
    "tasks_per_node": 1,
    "mem_gb": None,
    "nodes": 1,
    "name": "${hydra.job.name}",
    "stderr_to_stdout": False,
}
UPSTREAM_SLURM = {
    **UPSTREAM_BASE,
    "partition": None,
    "qos": None,
    "comment": None,
    "constraint": None,
    "exclude": None,
    "gres": None,
    "cpus_per_gpu": None,
    "gpus_per_task": None,
    "mem_per_gpu": None,
    "mem_per_cpu": None,
    "account": None,
    "signal_delay_s": 120,
    "max_num_timeout": 0,
    "additional_parameters": {},
    "array_parallelism": 256,
    "setup": None,
}
# what Hydra's main branch documents on top, and git-slurm's own block
MAIN_SLURM = {"srun_args": None, "python": None}
OWN: dict[str, Any] = {
    "snapshot": {
        "enabled": False,
        "branch_prefix": "slurm-job",
        "symlink_paths": ["outputs", "multirun", ".submitit"],
        "push_to_remote": True,
        "worktree_dir": None,
        "submodules": None,
    },
    "wait": True,
}


def ours_conf(executor: str) -> Any:
    return config.SlurmQueueConf if executor == "slurm" else config.LocalQueueConf


def ours_launcher(executor: str) -> Any:
    return launcher.SlurmLauncher if executor == "slurm" else launcher.LocalLauncher


def defaults(conf: Any) -> dict[str, Any]:
    values = OmegaConf.to_container(OmegaConf.structured(conf), resolve=False)
    assert isinstance(values, dict)
    values.pop("_target_")
    return {str(k): v for k, v in values.items()}


def test_slurm_fields_and_defaults_are_upstreams_plus_mains_plus_ours() -> None:
    assert defaults(config.SlurmQueueConf) == {**UPSTREAM_SLURM, **MAIN_SLURM, **OWN}
    # upstream's order first, so `--cfg hydra -p hydra.launcher` reads as it did
    assert list(defaults(config.SlurmQueueConf))[: len(UPSTREAM_SLURM)] == list(UPSTREAM_SLURM)


def test_local_fields_and_defaults_are_upstreams_plus_ours() -> None:
    assert defaults(config.LocalQueueConf) == {**UPSTREAM_BASE, **OWN}


def test_targets_name_our_launchers() -> None:
    assert config.SlurmQueueConf._target_.endswith("git_slurm_launcher.launcher.SlurmLauncher")
    assert config.LocalQueueConf._target_.endswith("git_slurm_launcher.launcher.LocalLauncher")


def test_tasks_per_node_may_be_null() -> None:
    cfg = OmegaConf.structured(config.SlurmQueueConf)
    cfg.tasks_per_node = None  # upstream 1.2.0 refuses this (hydra #1898)
    assert cfg.tasks_per_node is None


def test_shared_keys_are_upstreams_base_fields() -> None:
    assert set(UPSTREAM_BASE) == launcher.SHARED_KEYS
    assert {f.name for f in dataclasses.fields(config.SnapshotConf)} == set(OWN["snapshot"])


@pytest.mark.parametrize("case", sorted(render.CASES))
def test_submission_is_byte_for_byte_upstreams(case: str) -> None:
    expected = (GOLDEN / f"{case}.txt").read_text()
    assert render.render_case(case, ours_conf, ours_launcher) == expected


def render_with(executor: str, values: dict[str, Any], tmp_path: Path) -> str:
    params = render.launcher_params(ours_conf(executor), values, tmp_path)
    got = render.capture_executor(ours_launcher(executor), params, tmp_path)
    return render.render(got, tmp_path)


def test_snapshot_block_and_wait_never_reach_submitit(tmp_path: Path) -> None:
    values = {
        "snapshot": {"branch_prefix": "x", "symlink_paths": ["data"], "push_to_remote": False},
        "wait": False,
    }
    assert render_with("slurm", values, tmp_path) == (GOLDEN / "slurm-defaults.txt").read_text()


def test_srun_args_python_and_null_tasks_per_node(tmp_path: Path) -> None:
    values = {
        "srun_args": ["--cpu-bind=none", "--mpi=pmix"],
        "python": "apptainer exec image.sif python",
        "tasks_per_node": None,
    }
    text = render_with("slurm", values, tmp_path)
    assert "python: apptainer exec image.sif python\n" in text
    assert "--ntasks-per-node" not in text
    assert "_%t_log.err --cpu-bind=none --mpi=pmix COMMAND\n" in text


def test_setup_lines_of_the_launcher_come_before_the_users(tmp_path: Path) -> None:
    params = render.launcher_params(config.SlurmQueueConf, {"setup": ["module load x"]}, tmp_path)
    executor = launcher.SlurmLauncher(**params).make_executor(["cd -- /wt || exit 1"])
    assert executor._executor.parameters["setup"] == ["cd -- /wt || exit 1", "module load x"]


def test_a_time_limit_within_the_signal_delay_is_warned_about() -> None:
    """The CI failure this came from: timeout_min=1 with the default signal_delay_s=120 had
    SLURM send USR2 at the job's start, and the job died of it before submitit's handler."""
    defaults_ = defaults(config.SlurmQueueConf)
    assert launcher.early_signal_warning(defaults_) is None  # 60 min, 120 s: fine
    warning = launcher.early_signal_warning({**defaults_, "timeout_min": 2})
    assert warning is not None and "signal_delay_s=120" in warning
    assert launcher.early_signal_warning({**defaults_, "timeout_min": 3}) is None
