"""A sweep whose jobs report which code and config they ran (tests/test_launcher_e2e.py).

`helper` is imported at module level: a job imports it while unpickling its task. The modules
named in `cfg.modules` are imported inside the task, possibly after the test edited them.
With `markers` set, a job says it started (and where) and, with `release` set, waits for that
file before it goes on.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from pathlib import Path
from typing import Any

import helper  # type: ignore[import-not-found]  # beside this app, found at run time
import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd
from omegaconf import DictConfig

DEADLINE_S = 120.0


def module_report(name: str) -> dict[str, Any]:
    module = importlib.import_module(name)
    return {"version": module.VERSION, "file": module.__file__}


def started(markers: str, num: int) -> None:
    report = {"cwd": os.getcwd(), "helper": helper.__file__, "version": helper.VERSION}
    Path(markers, f"started-{num}-{os.getpid()}.json").write_text(json.dumps(report))


def wait_for(path: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {DEADLINE_S} s")
        time.sleep(0.05)


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> str:
    runtime = HydraConfig.get().runtime
    num = HydraConfig.get().job.num
    if cfg.markers:
        started(cfg.markers, num)
    if cfg.release:
        wait_for(cfg.release)
    modules = {name: module_report(name) for name in cfg.modules}
    modules["helper"] = {"version": helper.VERSION, "file": helper.__file__}
    Path("outputs").mkdir(exist_ok=True)
    Path("outputs", f"from-job-{num}.txt").write_text(f"job {num}\n")  # via the link
    result = {
        "value": cfg.value,
        "modules": modules,
        "cwd": os.getcwd(),
        "original_cwd": get_original_cwd(),
        "runtime_cwd": runtime.cwd,
        "output_dir": runtime.output_dir,
        "commit_env": os.environ.get("GIT_SLURM_COMMIT"),
        "pid": os.getpid(),
    }
    Path(runtime.output_dir, "result.json").write_text(json.dumps(result, indent=2))
    return str(cfg.value)


if __name__ == "__main__":
    main()
