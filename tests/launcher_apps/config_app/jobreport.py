"""What a job of the config app ran: its config, and files found from its code's location."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf


def module_files() -> list[str]:
    """`__file__` of every module this process has imported."""
    files = (getattr(m, "__file__", None) for m in list(sys.modules.values()))
    return sorted({os.path.realpath(f) for f in files if isinstance(f, str)})


def report(cfg: DictConfig, script: str, prompts_global: Path) -> None:
    """Write result.json into the job's output dir."""
    here = Path(script).parent
    runtime = HydraConfig.get().runtime
    result: dict[str, Any] = {
        "cfg": OmegaConf.to_container(cfg, resolve=True),
        "script": script,
        "prompts_via_file": (here / "prompts.txt").read_text(encoding="utf-8").strip(),
        "prompts_via_global": prompts_global.read_text(encoding="utf-8").strip(),
        "prompts_global_path": str(prompts_global),
        "modules": module_files(),
        "cwd": os.getcwd(),
        "output_dir": runtime.output_dir,
        "file_sources": [s.path for s in runtime.config_sources if s.schema == "file"],
    }
    out = Path(runtime.output_dir, "result.json")
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
