"""A small Hydra app whose jobs log which code and config they ran.

python train.py -m seed=1,2,3                                  # on submitit_local
python train.py -m seed=1,2,3 hydra/launcher=submitit_slurm    # on a SLURM cluster
"""

from __future__ import annotations

import logging
import os

import hydra
import model  # type: ignore[import-not-found]  # beside this file; the jobs import the snapshot's
from omegaconf import DictConfig

log = logging.getLogger(__name__)


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    score = model.train(lr=cfg.lr, seed=cfg.seed)
    log.info(
        "seed=%s lr=%s: model %s from %s scored %s (snapshot commit %s)",
        cfg.seed,
        cfg.lr,
        model.VERSION,
        model.__file__,
        score,
        os.environ.get("GIT_SLURM_COMMIT", "none")[:12],
    )
    return float(score)


if __name__ == "__main__":
    main()
