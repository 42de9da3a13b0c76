"""The config app's job as `python -m cfgpkg.run`: its primary config is pkg://cfgpkg/conf."""

from __future__ import annotations

from pathlib import Path

import hydra
import jobreport  # type: ignore[import-not-found]  # in the launch directory
from omegaconf import DictConfig

PROMPTS = Path(__file__).parent / "prompts.txt"


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    jobreport.report(cfg, __file__, PROMPTS)


if __name__ == "__main__":
    main()
