"""A launch with `hydra.launcher.snapshot.enabled=true`: one snapshot, and jobs that run it.

Submit side (`prepare`, once per multirun: the first batch's snapshot serves every batch a
sweeper launches): take the snapshot, point the config loader at the worktree's config dirs, so
that editing a YAML file after the launch changes no queued job (hydra #1945) while each job
still composes its own config as upstream's do, and work out the shell lines that start each
job inside the worktree. Job side (`SnapshotJob`): keep what the job ran in its output dir.
Outputs are never written through the worktree: the sweep dir is made absolute in the original
checkout, so recorded paths stay valid after `git slurm-gc` removes the worktree.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from git_slurm.errors import GitSlurmError
from git_slurm.jobstart import check_line
from git_slurm.launch import LaunchSnapshot, SnapshotSettings, record_jobs, start_launch_snapshot
from git_slurm.launch_env import PathMap, current_import_roots, job_pythonpath, shell_setup
from hydra_plugins.git_slurm_launcher._config_snapshot import freeze_config_sources
from hydra_plugins.git_slurm_launcher._launch_checks import (
    SnapshotLaunchError,
    install_warning,
    installing_setup_lines,
)
from hydra_plugins.git_slurm_launcher._main_script import ScriptTask, resolve_task, script_task

log = logging.getLogger(__name__)

RECORD_NAME = "snapshot.json"


@dataclass(frozen=True)
class SnapshotJob:
    """What every job of a snapshot launch carries with the pickled launcher."""

    record: Dict[str, Any]  # the snapshot: branch, commit, base, dirty, worktree, ...
    sweep_dir: str  # absolute, in the original checkout

    def place_outputs(self, cfg: DictConfig) -> None:
        """The job's sweep dir in the original checkout, never relative to the worktree, and
        the original cwd (`get_original_cwd()`) the launch dir, as for upstream's jobs."""
        with open_dict(cfg.hydra):
            cfg.hydra.sweep.dir = self.sweep_dir
            cfg.hydra.runtime.cwd = str(self.record["launch_dir"])

    def wrap(self, task_function: TaskFunction) -> TaskFunction:
        """The task, preceded by keeping the snapshot record in the job's output dir."""

        function = resolve_task(task_function)  # the script's own, imported from the worktree

        @functools.wraps(function)
        def task(cfg: DictConfig) -> Any:
            self.write_record()
            return function(cfg)

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
    setup: List[str]  # shell lines that put a job into the worktree
    job: SnapshotJob
    task: Optional[ScriptTask]  # pickled instead of a task function of `__main__`

    def submission_failed(self) -> None:
        """Say what becomes of the worktree: no job of this launch is recorded with it."""
        log.error(
            "git-slurm: submitting the jobs failed; no job is recorded with %s, so `git "
            "slurm-gc` may remove it once this launch has ended",
            self.snapshot.worktree,
        )

    def record(self, job_ids: Sequence[str], kind: str, cluster: Optional[str] = None) -> None:
        """Record the jobs with the snapshot (`cluster`: the one sbatch named); they run
        already, so a failure only warns."""
        try:
            record_jobs(self.snapshot, job_ids, kind, cluster)
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


class EarlySnapshot:
    """The multirun's snapshot, started when Hydra sets the launcher up: `git slurm-snapshot`
    runs while the sweeper composes every job's config, and the first launch takes it
    (`take`). Setup waits only until it has recorded the working tree, so the snapshot is the
    tree as it was then, before any job's config was composed. When no launch takes it (the
    sweeper failed, was interrupted, or launched nothing), `abandon` undoes it."""

    def __init__(self, config: DictConfig, params: Dict[str, Any]) -> None:
        self.launch_dir = Path(os.getcwd())
        self.sweep_dir = absolute_sweep_dir(config, self.launch_dir)
        message = f"Hydra multirun, outputs in {self.sweep_dir}"
        self.settings = settings_from(params.get("snapshot") or {}, message)
        self.taken = False
        self._snapshot: Optional[LaunchSnapshot] = None
        try:
            self._pending = start_launch_snapshot(self.settings, self.launch_dir)
        except GitSlurmError as exc:
            raise snapshot_failed(exc) from exc
        try:
            captured = self._pending.wait_captured()
        except BaseException:  # Ctrl-C while the tree is captured: no launch will take it
            self.abandon()
            raise
        if not captured:  # it ended already: say why, before the sweep
            self.take()

    def take(self) -> LaunchSnapshot:
        """The snapshot, once the command has made it (the first launch takes it)."""
        self.taken = True
        if self._snapshot is not None:
            return self._snapshot
        try:
            snapshot = self._snapshot = self._pending.result()
        except GitSlurmError as exc:
            raise snapshot_failed(exc) from exc
        log.info("git-slurm: %s", snapshot.summary(self._pending.waited))
        for note in snapshot.notes:  # the tool marks what deserves attention, e.g. a failed push
            level = logging.WARNING if note.startswith("warning:") else logging.INFO
            log.log(level, "git-slurm: %s", note)
        return snapshot

    def abandon(self) -> None:
        """Undo the snapshot unless a launch took it (see PendingSnapshot.abandon)."""
        if not self.taken:
            self.taken = True
            self._pending.abandon()


def snapshot_failed(exc: GitSlurmError) -> SnapshotLaunchError:
    return SnapshotLaunchError(f"git-slurm: no job submitted, the snapshot failed: {exc.message}")


def freeze_configs(context: HydraContext, paths: PathMap) -> None:
    """Every later composition with this context's loader (the jobs', the sweeper's for later
    batches) reads the snapshot's YAML."""
    for path in freeze_config_sources(context.config_loader, paths):
        log.warning(
            "git-slurm: config dir %s is not in the snapshot (ignored by git?); the jobs "
            "read its YAML from the live checkout",
            path,
        )


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


def reuse(prepared: PreparedLaunch, batch_size: int) -> None:
    """A later batch of the multirun runs the first batch's snapshot, code and config."""
    log.info(
        "git-slurm: %d more job(s) run snapshot %s (%s), as every batch of this multirun",
        batch_size,
        prepared.snapshot.branch,
        prepared.snapshot.commit[:12],
    )


def frozen_task(task_function: TaskFunction, paths: PathMap) -> Optional[ScriptTask]:
    """What the jobs get instead of a task function of the launched script, if anything."""
    task, why_not = script_task(task_function, paths)
    if why_not:
        log.warning(
            "git-slurm: the jobs run the task function as pickled at launch, not imported "
            "from the snapshot: %s; its `__file__` and the globals it uses are the launch's",
            why_not,
        )
    return task


def snapshot_has_dir(workdir: Path, links: Sequence[str]) -> bool:
    """Whether the snapshot holds `workdir` with code in it, not only made to hold the links
    (the link paths, relative to the launch dir, are made even where git ignores the dir;
    those of `git config slurm.link` are links too)."""
    made_for_links = {Path(link).parts[0] for link in links if Path(link).parts}
    try:
        entries = list(workdir.iterdir())
    except OSError:
        return False
    return any(not e.is_symlink() and e.name not in made_for_links for e in entries)


def refuse_what_cannot_run(snapshot: LaunchSnapshot, settings: SnapshotSettings) -> None:
    """Refuse, before anything is submitted, a launch whose jobs would fail in the queue."""
    if not snapshot_has_dir(snapshot.workdir, settings.symlink_paths):
        raise SnapshotLaunchError(
            f"git-slurm: no job submitted: the launch directory {snapshot.launch_dir} is not "
            "in the snapshot (ignored by git?), so no job could start in it; launch from a "
            f"directory git tracks (`git slurm-gc` reclaims {snapshot.worktree} once this "
            "launch has ended)"
        )


def warn_about_setup(setup: Any, paths: PathMap) -> None:
    lines = [str(x) for x in setup] if isinstance(setup, (list, tuple)) else []
    for line in installing_setup_lines(lines, paths.in_checkout):
        log.warning("git-slurm: %s", install_warning(line))


def prepare(
    context: HydraContext, task_function: TaskFunction, params: Dict[str, Any], early: EarlySnapshot
) -> PreparedLaunch:
    """Take the snapshot of the code and config, and plan the jobs' environment, for the
    whole multirun."""
    snapshot = early.take()
    refuse_what_cannot_run(snapshot, early.settings)
    paths = PathMap(origin=snapshot.origin, worktree=snapshot.worktree.resolve())
    warn_about_setup(params.get("setup"), paths)
    freeze_configs(context, paths)
    return PreparedLaunch(
        snapshot=snapshot,
        sweep_dir=early.sweep_dir,
        setup=job_setup(snapshot),
        job=SnapshotJob(record=snapshot.record(), sweep_dir=str(early.sweep_dir)),
        task=frozen_task(task_function, paths),
    )
