"""A launch with `hydra.launcher.snapshot.enabled=true`: one snapshot, and jobs that run it.

Submit side (`prepare`): take the snapshot, compose every job's config now, so that editing a
YAML file after the launch changes no queued job (hydra #1945), and work out the shell lines
that start each job inside the worktree. Job side (`SnapshotJob`): keep what the job ran in its
output dir. Outputs are never written through the worktree: the sweep dir is made absolute in
the original checkout, so recorded paths stay valid after `git slurm-gc` removes the worktree.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from git_slurm.errors import GitSlurmError
from git_slurm.jobstart import check_line
from git_slurm.launch import LaunchSnapshot, SnapshotSettings, record_jobs, take_launch_snapshot
from git_slurm.launch_env import PathMap, current_import_roots, job_pythonpath, shell_setup
from git_slurm.records import IN_USE_GRACE

log = logging.getLogger(__name__)

RECORD_NAME = "snapshot.json"


class SnapshotLaunchError(CompactHydraException):
    """The snapshot could not be taken: nothing was submitted (Hydra prints just this line)."""


@dataclass(frozen=True)
class SnapshotJob:
    """What every job of a snapshot launch carries with the pickled launcher."""

    record: Dict[str, Any]  # the snapshot: branch, commit, base, dirty, worktree, ...

    def wrap(self, task_function: TaskFunction) -> TaskFunction:
        """The task, preceded by keeping the snapshot record in the job's output dir."""

        @functools.wraps(task_function)
        def task(cfg: DictConfig) -> Any:
            self.write_record()
            return task_function(cfg)

        return task

    def write_record(self) -> Path:
        hydra_cfg = HydraConfig.get()
        where = Path(hydra_cfg.runtime.output_dir)
        if hydra_cfg.output_subdir is not None:
            where = where / str(hydra_cfg.output_subdir)
        where.mkdir(parents=True, exist_ok=True)
        path = where / RECORD_NAME
        path.write_text(json.dumps(self.record, indent=2) + "\n", encoding="utf-8")
        log.info(
            "git-slurm: running snapshot %s (%s) from %s",
            self.record["branch"],
            str(self.record["commit"])[:12],
            os.getcwd(),
        )
        return path


@dataclass(frozen=True)
class PreparedLaunch:
    """Everything the launcher needs to submit the jobs of a snapshot launch."""

    snapshot: LaunchSnapshot
    sweep_dir: Path  # absolute, in the original checkout
    configs: List[DictConfig]  # each job's config, composed at launch time
    setup: List[str]  # shell lines that put a job into the worktree
    job: SnapshotJob

    def submission_failed(self) -> None:
        """Say what becomes of the worktree: no job of this launch is recorded with it."""
        log.error(
            "git-slurm: submitting the jobs failed; no job is recorded with %s, so `git "
            "slurm-gc` may remove it once the launch is %d minutes old",
            self.snapshot.worktree,
            IN_USE_GRACE // 60,
        )

    def record(self, job_ids: Sequence[str], kind: str) -> None:
        """Record the jobs with the snapshot; they run already, so a failure only warns."""
        try:
            record_jobs(self.snapshot, job_ids, kind)
        except (OSError, ValueError) as exc:
            log.warning(
                "git-slurm: could not record the jobs with %s: %s (git slurm-gc "
                "will not know this worktree is in use)",
                self.snapshot.worktree,
                exc,
            )


def settings_from(params: Dict[str, Any], message: str) -> SnapshotSettings:
    """The `snapshot` block of the launcher config as the options of `git slurm-snapshot`."""
    links = params.get("symlink_paths")
    return SnapshotSettings(
        branch_prefix=str(params.get("branch_prefix", "slurm-job")),
        symlink_paths=tuple(str(p) for p in (links or ())),
        push_to_remote=bool(params.get("push_to_remote", True)),
        worktree_dir=None if params.get("worktree_dir") is None else str(params["worktree_dir"]),
        message=message,
        submodules=None if params.get("submodules") is None else bool(params["submodules"]),
    )


def absolute_sweep_dir(config: DictConfig, launch_dir: Path) -> Path:
    """`hydra.sweep.dir` in the original checkout (it is relative by default)."""
    return launch_dir / str(config.hydra.sweep.dir)


def take_snapshot(settings: SnapshotSettings, launch_dir: Path) -> LaunchSnapshot:
    try:
        snapshot = take_launch_snapshot(settings, launch_dir)
    except GitSlurmError as exc:
        raise SnapshotLaunchError(
            f"git-slurm: no job submitted, the snapshot failed: {exc.message}"
        ) from exc
    log.info("git-slurm: %s", snapshot.summary())
    for note in snapshot.notes:  # the tool marks what deserves attention, e.g. a failed push
        level = logging.WARNING if note.startswith("warning:") else logging.INFO
        log.log(level, "git-slurm: %s", note)
    return snapshot


def compose(
    context: HydraContext, config: DictConfig, overrides: Sequence[str], sweep_dir: Path
) -> DictConfig:
    """The job's config as the job itself would compose it, with the sweep dir made absolute."""
    cfg = context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(cfg.hydra):
        cfg.hydra.sweep.dir = str(sweep_dir)
    return cfg


def job_setup(snapshot: LaunchSnapshot) -> List[str]:
    """Shell lines that start a job in the worktree with the worktree's modules first."""
    paths = PathMap(origin=snapshot.origin, worktree=snapshot.worktree.resolve())
    roots = current_import_roots(paths, str(snapshot.launch_dir))
    pythonpath, missing = job_pythonpath(paths, roots)
    for path in missing:
        log.warning(
            "git-slurm: %s is not in the snapshot (ignored by git?); modules the jobs "
            "import from it come from the live checkout",
            path,
        )
    env = {"GIT_SLURM_BRANCH": snapshot.branch, "GIT_SLURM_COMMIT": snapshot.commit}
    check = check_line(snapshot.worktree, snapshot.commit, snapshot.branch)  # files == commit
    return [*shell_setup(snapshot.workdir, pythonpath, env), check]


def prepare(
    context: HydraContext,
    config: DictConfig,
    snapshot_params: Dict[str, Any],
    job_overrides: Sequence[Sequence[str]],
) -> PreparedLaunch:
    """Snapshot the code, then compose the jobs' configs and plan their environment."""
    launch_dir = Path(os.getcwd())
    sweep_dir = absolute_sweep_dir(config, launch_dir)
    message = f"Hydra launch of {len(job_overrides)} job(s), outputs in {sweep_dir}"
    snapshot = take_snapshot(settings_from(snapshot_params, message), launch_dir)
    configs = [compose(context, config, overrides, sweep_dir) for overrides in job_overrides]
    return PreparedLaunch(
        snapshot=snapshot,
        sweep_dir=sweep_dir,
        configs=configs,
        setup=job_setup(snapshot),
        job=SnapshotJob(record=snapshot.record()),
    )
