"""`hydra.launcher.wait=false`: what a launch returns for jobs it did not wait for."""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueuedJob:
    """A job that is queued or running; its results will be in `output_dir`."""

    job_id: str
    output_dir: Optional[str]  # None when hydra.sweep.subdir needs what only the job knows
    stdout: str  # submitit's log files of the job's first task
    stderr: str


class QueuedJobReturn(JobReturn):
    """A JobReturn whose status stays UNKNOWN (nothing ran yet) but whose `return_value` can be
    read: it is the QueuedJob. Hydra's sweepers read every `return_value` to raise the first
    failure; this lets them move on without patching hydra-core."""

    @property
    def return_value(self) -> Any:
        return self._return_value

    @return_value.setter
    def return_value(self, value: Any) -> None:
        self._return_value = value


def expected_output_dir(config: DictConfig, job_num: int, job_id: str) -> Optional[str]:
    """`hydra.sweep.dir/hydra.sweep.subdir` of a composed job config, as run_job will make it."""
    cfg = copy.deepcopy(config)
    try:
        with open_dict(cfg.hydra.job):
            cfg.hydra.job.num = job_num
            cfg.hydra.job.id = job_id
        sweep_dir = OmegaConf.select(cfg, "hydra.sweep.dir", throw_on_missing=True)
        subdir = OmegaConf.select(cfg, "hydra.sweep.subdir", throw_on_missing=True)
    except Exception:  # e.g. a `${hydra:...}` resolver, which needs the job's HydraConfig
        return None
    return os.path.abspath(f"{sweep_dir}/{subdir}")  # the launch's cwd, as for run_job


def queued_returns(
    jobs: Sequence[Any],
    job_overrides: Sequence[Sequence[str]],
    configs: Sequence[DictConfig],
    first_num: int,
) -> list[JobReturn]:
    """Describe and log the queued jobs, and return one QueuedJobReturn for each."""
    returns: list[JobReturn] = []
    log.info(
        "git-slurm: %d job(s) queued; not waiting for them (hydra.launcher.wait=false)", len(jobs)
    )
    for offset, (job, overrides, cfg) in enumerate(zip(jobs, job_overrides, configs, strict=True)):
        queued = QueuedJob(
            job_id=str(job.job_id),
            output_dir=expected_output_dir(cfg, first_num + offset, str(job.job_id)),
            stdout=str(job.paths.stdout),
            stderr=str(job.paths.stderr),
        )
        where = queued.output_dir or "(decided by the job)"
        log.info(
            "\t#%d job %s: outputs %s, log %s",
            first_num + offset,
            queued.job_id,
            where,
            queued.stdout,
        )
        ret = QueuedJobReturn(overrides=list(overrides), status=JobStatus.UNKNOWN)
        ret.return_value = queued
        returns.append(ret)
    return returns
