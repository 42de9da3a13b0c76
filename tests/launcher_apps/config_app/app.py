"""A job that reports its config (a config group, `hydra.searchpath`, `--config-dir`, pkg://)
and files it finds next to its script, via `__file__` and via a module-level global."""

from __future__ import annotations

from pathlib import Path

import hydra
import jobreport  # type: ignore[import-not-found]  # beside this app
from omegaconf import DictConfig

PROMPTS = Path(__file__).parent / "prompts.txt"


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    jobreport.report(cfg, __file__, PROMPTS)


if __name__ == "__main__":
    main()
