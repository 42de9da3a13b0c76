"""Render what a submitit launcher would submit, without submitting anything.

The golden files beside this module were rendered from hydra-submitit-launcher 1.2.0's own
launcher (`python tests/launcher_apps/golden/render.py PATH/TO/hydra_submitit_launcher`);
tests/test_launcher_parity.py renders git-slurm's launcher the same way and compares.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import submitit
from omegaconf import OmegaConf

HERE = Path(__file__).resolve().parent

#: (executor, launcher config values) for every golden file, named after the case
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "slurm-defaults": ("slurm", {}),
    "slurm-all": (
        "slurm",
        {
            "timeout_min": 30,
            "cpus_per_task": 4,
            "gpus_per_node": 2,
            "tasks_per_node": 2,
            "nodes": 2,
            "name": "myjob",
            "stderr_to_stdout": True,
            "partition": "debug",
            "qos": "high",
            "comment": "a comment",
            "constraint": "volta",
            "exclude": "n1,n2",
            "gres": "gpu:2",
            "cpus_per_gpu": 2,
            "gpus_per_task": 1,
            "mem_per_gpu": "8G",
            "account": "acct",
            "signal_delay_s": 60,
            "max_num_timeout": 3,
            "additional_parameters": {"mail-type": "END"},
            "array_parallelism": 2,
            "setup": ["module load cuda", "echo ready"],
        },
    ),
    "slurm-mem": ("slurm", {"mem_gb": 16}),
    "slurm-mem-per-cpu": ("slurm", {"mem_per_cpu": "2G"}),
    "local-defaults": ("local", {}),
    "local-all": (
        "local",
        {
            "timeout_min": 5,
            "cpus_per_task": 2,
            "gpus_per_node": 0,
            "tasks_per_node": 2,
            "mem_gb": 4,
            "nodes": 1,
            "name": "myjob",
            "stderr_to_stdout": True,
        },
    ),
}


class Captured(Exception):
    """Carries the executor out of `launch`, instead of letting it submit."""

    def __init__(self, executor: Any) -> None:
        super().__init__("captured")
        self.executor = executor


def launcher_params(conf: Any, values: dict[str, Any], folder: Path) -> dict[str, Any]:
    """What Hydra passes a launcher: the structured config, overridden and resolved."""
    cfg = OmegaConf.merge(OmegaConf.structured(conf), values)
    cfg.submitit_folder = str(folder / ".submitit" / "%j")
    if "name" not in values:
        cfg.name = "app"
    params = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(params, dict)
    params.pop("_target_")
    return {str(k): v for k, v in params.items()}


def capture_executor(launcher_cls: Any, params: dict[str, Any], sweep_dir: Path) -> Any:
    """The submitit executor that `launcher_cls(**params).launch` would submit with."""
    launcher = launcher_cls(**params)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})
    launcher.setup(hydra_context=mock.Mock(), task_function=lambda cfg: None, config=config)

    def refuse(self: Any, *args: Any, **kwargs: Any) -> None:
        raise Captured(self)

    with mock.patch.object(submitit.AutoExecutor, "map_array", refuse):
        try:
            launcher.launch([["a=1"]], 0)
        except Captured as got:
            return got.executor
    raise AssertionError("launch submitted nothing")


def render(executor: Any, folder: Path) -> str:
    """Everything the executor submits with, as text with the varying paths replaced."""
    inner = executor._executor
    lines = ["# parameters", json.dumps(inner.parameters, indent=2, sort_keys=True)]
    lines += ["# init", f"max_num_timeout: {inner.max_num_timeout}", f"python: {inner.python}"]
    if executor.cluster == "slurm":
        array = copy.deepcopy(inner)
        array.parameters["map_count"] = 3
        lines += ["# sbatch, one job", inner._make_submission_file_text("COMMAND", "UID")]
        lines += ["# sbatch, an array of 3", array._make_submission_file_text("COMMAND", "UID")]
    text = "\n".join(lines) + "\n"
    return text.replace(str(folder), "FOLDER").replace(sys.executable, "PYTHON")


def render_case(name: str, conf_for: Any, launcher_for: Any) -> str:
    """Render case `name` with the config class and launcher class of one package."""
    executor_name, values = CASES[name]
    folder = Path(tempfile.mkdtemp(prefix="golden-"))
    try:
        params = launcher_params(conf_for(executor_name), values, folder)
        executor = capture_executor(launcher_for(executor_name), params, folder)
        return render(executor, folder)
    finally:
        shutil.rmtree(folder)


def main(upstream: str) -> None:
    """Write the golden files from hydra-submitit-launcher's source at `upstream`."""
    with tempfile.TemporaryDirectory(prefix="upstream-") as tmp:
        package = Path(tmp) / "hydra_plugins" / "hydra_submitit_launcher"
        shutil.copytree(upstream, package, ignore=shutil.ignore_patterns("__pycache__"))
        sys.path.insert(0, tmp)
        from hydra_plugins.hydra_submitit_launcher import config, submitit_launcher  # type: ignore

        def conf_for(executor: str) -> Any:
            return config.SlurmQueueConf if executor == "slurm" else config.LocalQueueConf

        def launcher_for(executor: str) -> Any:
            cls = submitit_launcher.SlurmLauncher if executor == "slurm" else None
            return cls or submitit_launcher.LocalLauncher

        for name in CASES:
            (HERE / f"{name}.txt").write_text(render_case(name, conf_for, launcher_for))


if __name__ == "__main__":
    main(sys.argv[1])
