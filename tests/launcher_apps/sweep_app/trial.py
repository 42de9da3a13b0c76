"""An objective for batch sweepers (tests/test_launcher_batches.py): each trial reports the
code and config it ran and returns a number (optuna needs one). Trials numbered below
`hold_below` say they started and wait for `release`: the test edits the checkout meanwhile."""

from __future__ import annotations

import importlib
import json
import os
import time
from pathlib import Path

import helper  # type: ignore[import-not-found]  # beside this app, found at run time
import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

DEADLINE_S = 120.0


def hold(markers: str, release: str, num: int) -> None:
    Path(markers, f"started-{num}").write_text(str(os.getpid()))
    deadline = time.monotonic() + DEADLINE_S
    while not os.path.exists(release):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} did not appear within {DEADLINE_S} s")
        time.sleep(0.05)


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    runtime = HydraConfig.get().runtime
    num = HydraConfig.get().job.num
    if num < int(cfg.get("hold_below", 0)):
        hold(cfg.markers, cfg.release, num)
    result = {
        "num": num,
        "value": cfg.value,
        "helper": helper.VERSION,
        "late": importlib.import_module("late").VERSION,
        "cwd": os.getcwd(),
        "commit_env": os.environ.get("GIT_SLURM_COMMIT"),
        "output_dir": runtime.output_dir,
    }
    Path(runtime.output_dir, "result.json").write_text(json.dumps(result, indent=2))
    return float(cfg.seed)


if __name__ == "__main__":
    main()
