"""`LocalLauncher` and `SlurmLauncher`: hydra-submitit-launcher 1.2.0, plus snapshot and wait.

With `snapshot.enabled: false` and `wait: true` (the defaults) a launch does exactly what
hydra-submitit-launcher does: same executor, same parameters, same job-side composition.
submitit and git-slurm's snapshot code are imported inside `setup` (only with the snapshot on),
`launch` and `__call__`: Hydra imports this module for every app while it looks for plugins.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
import shlex
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager, Dict, List, Optional, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from hydra_plugins.git_slurm_launcher._job_errors import keep_job_traceback, restore_source_files
from hydra_plugins.git_slurm_launcher.config import BaseQueueConf

if TYPE_CHECKING:
    from hydra_plugins.git_slurm_launcher._snapshot_launch import (
        EarlySnapshot,
        PreparedLaunch,
        SnapshotJob,
    )

log = logging.getLogger(__name__)

# git-slurm's own settings: they shape the launch and never reach submitit
OWN_KEYS = frozenset({"snapshot", "wait"})
# arguments of the executor's constructor; everything else goes to update_parameters
INIT_KEYS = frozenset({"max_num_timeout", "python"})
# parameters every submitit executor takes without an executor prefix
SHARED_KEYS = frozenset(f.name for f in dataclasses.fields(BaseQueueConf))


class BaseSubmititLauncher(Launcher):
    _EXECUTOR = "abstract"

    def __init__(self, **params: Any) -> None:
        self.params: Dict[str, Any] = {}
        for k, v in params.items():
            if OmegaConf.is_config(v):
                v = OmegaConf.to_container(v, resolve=True)
            self.params[k] = v

        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None
        # set on the copy of the launcher that the jobs of a snapshot launch unpickle
        self.snapshot_job: Optional[SnapshotJob] = None
        # the multirun's snapshot, taken by the first `launch`: a sweeper that launches in
        # batches (optuna, nevergrad, max_batch_size) instantiates its launcher once, and
        # every batch must run the code and config of the command the user typed
        self.prepared: Optional[PreparedLaunch] = None
        # that snapshot, started by `setup` (see _snapshot_launch.EarlySnapshot)
        self.early: Optional[EarlySnapshot] = None

    def __getstate__(self) -> Dict[str, Any]:
        """What a job unpickles: never the submitting side's snapshot process."""
        state = self.__dict__.copy()
        state["early"] = None
        return state

    def setup(
        self,
        *,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        self._start_snapshot()

    def __call__(
        self,
        sweep_overrides: List[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: Dict[type, Singleton],
    ) -> JobReturn:
        """Run one job (in the job's process): it composes its own config, as upstream's do
        (a snapshot launch's loader reads the snapshot's config dirs)."""
        # lazy import to ensure plugin discovery remains fast
        import submitit

        assert self.hydra_context is not None
        assert self.config is not None
        assert self.task_function is not None

        Singleton.set_state(singleton_state)
        setup_globals()
        sweep_config = self.hydra_context.config_loader.load_sweep_config(
            self.config, sweep_overrides
        )
        if self.snapshot_job is not None:
            self.snapshot_job.place_outputs(sweep_config)

        with open_dict(sweep_config.hydra.job) as job:
            # Populate new job variables
            job.id = submitit.JobEnvironment().job_id  # type: ignore[attr-defined]
            sweep_config.hydra.job.num = job_num

        task_function = self.task_function
        restore_source_files(task_function)  # before it can fail: its traceback names them
        if self.snapshot_job is not None:
            task_function = self.snapshot_job.wrap(task_function)
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=task_function,
            config=sweep_config,
            job_dir_key=job_dir_key,
            job_subdir_key="hydra.sweep.subdir",
        )
        return keep_job_traceback(ret)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Resubmit the current callable at its current state with the same initial arguments."""
        # lazy import to ensure plugin discovery remains fast
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)

    def make_executor(self, setup: Sequence[str] = ()) -> Any:
        """The submitit executor for this launcher's parameters, with `setup` shell lines run
        before the user's own `setup` lines."""
        # lazy import to ensure plugin discovery remains fast
        import submitit

        params = {k: v for k, v in self.params.items() if k not in OWN_KEYS}
        init_params = {"folder": params["submitit_folder"]}
        init_params.update(
            **{f"{self._EXECUTOR}_{x}": y for x, y in params.items() if x in INIT_KEYS}
        )
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init_params)

        init_keys = INIT_KEYS | {"submitit_folder"}
        update = {
            x if x in SHARED_KEYS else f"{self._EXECUTOR}_{x}": y
            for x, y in params.items()
            if x not in init_keys
        }
        if setup:
            key = f"{self._EXECUTOR}_setup"
            update[key] = [*setup, *(update.get(key) or [])]
        executor.update_parameters(**update)
        return executor

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        assert self.config is not None
        assert self.hydra_context is not None

        num_jobs = len(job_overrides)
        assert num_jobs > 0
        prepared = self._prepare_snapshot(job_overrides)  # before anything is submitted
        wait = bool(self.params.get("wait", True))
        try:
            with self._sbatch_answers() as clusters:
                jobs, configs = self._submit(job_overrides, initial_job_idx, prepared, wait)
        except BaseException:
            if prepared:
                prepared.submission_failed()
            raise
        if prepared:
            cluster = next((c for c in clusters if c), None)
            prepared.record([str(j.job_id) for j in jobs], self._EXECUTOR, cluster)
        if not wait:
            return self._queued(jobs, job_overrides, configs, initial_job_idx)
        from hydra_plugins.git_slurm_launcher._progress import wait_for

        wait_for(jobs, initial_job_idx)  # says what it queued, how far it is, what failed
        return [j.results()[0] for j in jobs]

    def _submit(
        self,
        job_overrides: Sequence[Sequence[str]],
        initial_job_idx: int,
        prepared: Optional[PreparedLaunch],
        wait: bool,
    ) -> tuple[List[Any], List[DictConfig]]:
        """Submit every job; their submitit handles, and (not waiting) their configs."""
        executor = self.make_executor(
            self._detach_lines(wait) + (prepared.setup if prepared else [])
        )
        self._make_sweep_dir(prepared.sweep_dir if prepared else None)

        # composed before submitting: composing is much slower once every job's pickled
        # arguments sit in memory (the garbage collector walks them all)
        configs = self._configs(job_overrides, prepared) if not wait else []
        job_params = self._job_params(job_overrides, initial_job_idx)
        runner = self._snapshot_runner(prepared) if prepared else self
        from hydra_plugins.git_slurm_launcher._shared_payload import write_payload

        shared = write_payload(self._payload_folder(), runner)
        return executor.map_array(shared, *zip(*job_params, strict=True)), configs

    def _payload_folder(self) -> Path:
        """Where the launch's shared payload goes: beside the jobs' own submitit folders."""
        return _first_fixed_folder(Path(str(self.params["submitit_folder"])).absolute())

    def _make_sweep_dir(self, absolute: Optional[Path]) -> None:
        """As upstream; a snapshot launch passes the sweep dir made absolute in the checkout."""
        assert self.config is not None
        sweep_dir = absolute or Path(str(self.config.hydra.sweep.dir))
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            mode = int(str(self.config.hydra.sweep.mode), 8)
            os.chmod(sweep_dir, mode=mode)

    def _job_params(
        self,
        job_overrides: Sequence[Sequence[str]],
        initial_job_idx: int,
    ) -> List[Any]:
        """Each job's own arguments of `__call__` (the shared payload adds the singleton
        state, the same for every job)."""
        job_params: List[Any] = []
        for idx, overrides in enumerate(job_overrides):
            idx = initial_job_idx + idx
            lst = " ".join(filter_overrides(overrides))
            log.info(f"\t#{idx} : {lst}")
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}"))
        return job_params

    def _snapshot_on(self) -> bool:
        """Whether this launch snapshots; an unknown key under `snapshot` is refused."""
        from hydra_plugins.git_slurm_launcher._launch_checks import (
            SnapshotLaunchError,
            unknown_snapshot_key,
        )

        refusal = unknown_snapshot_key(self.params)
        if refusal:
            raise SnapshotLaunchError(refusal)
        return self._snapshot_enabled()

    def _snapshot_enabled(self) -> bool:
        """`hydra.launcher.snapshot.enabled` as given (unchecked keys: see `_snapshot_on`)."""
        return bool((self.params.get("snapshot") or {}).get("enabled", False))

    def _start_snapshot(self) -> None:
        """Start the multirun's snapshot now, while the sweeper has every job's config still
        to compose; the first `launch` takes it. Nothing when the snapshot is off, or when a
        key is unknown (`launch` refuses that before it submits anything, as always)."""
        if self.early is not None or not self._snapshot_enabled():
            return
        from hydra_plugins.git_slurm_launcher._launch_checks import unknown_snapshot_key

        if unknown_snapshot_key(self.params):
            return
        # lazy import: git-slurm's snapshot code is only needed when the feature is on
        from hydra_plugins.git_slurm_launcher._snapshot_launch import EarlySnapshot

        assert self.config is not None
        self.early = EarlySnapshot(self.config, self.params)
        # no launch may come (the sweeper fails, is interrupted, has no job): the snapshot is
        # then undone when this launcher goes, at the latest when Python exits
        weakref.finalize(self, self.early.abandon)

    def _prepare_snapshot(self, job_overrides: Sequence[Sequence[str]]) -> Optional[PreparedLaunch]:
        if not self._snapshot_on():
            return None
        # lazy import: git-slurm's snapshot code is only needed when the feature is on
        from hydra_plugins.git_slurm_launcher._snapshot_launch import prepare, reuse

        if self.prepared is not None:  # a later batch of the same multirun
            reuse(self.prepared, len(job_overrides))
            return self.prepared
        assert self.hydra_context is not None and self.task_function is not None
        self._start_snapshot()  # setup started it, unless the caller never set this one up
        assert self.early is not None
        self.prepared = prepare(self.hydra_context, self.task_function, self.params, self.early)
        return self.prepared

    def _snapshot_runner(self, prepared: PreparedLaunch) -> BaseSubmititLauncher:
        """A copy of this launcher for the jobs to unpickle: it carries the snapshot record
        (and, for a task of the launched script, where to find it in the snapshot), and
        leaves this launcher as it was for the sweeper's next batch."""
        runner = copy.copy(self)
        runner.snapshot_job = prepared.job
        runner.task_function = prepared.task or self.task_function
        runner.prepared = None  # the submit side's business, not the jobs'
        return runner

    def _detach_lines(self, wait: bool) -> List[str]:
        """Nothing, except for local jobs nobody waits for (see LocalLauncher)."""
        return []

    def _sbatch_answers(self) -> ContextManager[List[Optional[str]]]:
        """While submitting: the cluster each sbatch said it submitted to (SlurmLauncher)."""
        return contextlib.nullcontext([])

    def _configs(
        self, job_overrides: Sequence[Sequence[str]], prepared: Optional[PreparedLaunch]
    ) -> List[DictConfig]:
        """Each job's config, composed here only to say where its outputs go when nobody
        waits for the jobs (upstream never does this: it always waits)."""
        assert self.config is not None and self.hydra_context is not None
        loader = self.hydra_context.config_loader
        configs = [loader.load_sweep_config(self.config, list(o)) for o in job_overrides]
        if prepared:
            for cfg in configs:
                prepared.job.place_outputs(cfg)
        return configs

    def _queued(
        self,
        jobs: Sequence[Any],
        job_overrides: Sequence[Sequence[str]],
        configs: Sequence[DictConfig],
        first_num: int,
    ) -> Sequence[JobReturn]:
        from hydra_plugins.git_slurm_launcher._queued import queued_returns

        return queued_returns(jobs, job_overrides, configs, first_num)


class LocalLauncher(BaseSubmititLauncher):
    _EXECUTOR = "local"

    def _detach_lines(self, wait: bool) -> List[str]:
        """A local job outlives a launch that does not wait for it: its controller must not
        hold the terminal (or a caller's pipe) open, nor die when that terminal closes."""
        if wait:
            return []
        folder = Path(str(self.params["submitit_folder"])).absolute()
        log_file = _first_fixed_folder(folder) / "local-controllers.log"
        return [
            f"mkdir -p -- {shlex.quote(str(log_file.parent))}",
            "trap '' HUP",
            f"exec >>{shlex.quote(str(log_file))} 2>&1 </dev/null",
        ]


class SlurmLauncher(BaseSubmititLauncher):
    _EXECUTOR = "slurm"

    def _sbatch_answers(self) -> ContextManager[List[Optional[str]]]:
        from hydra_plugins.git_slurm_launcher._sbatch_clusters import sbatch_clusters

        return sbatch_clusters()

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        warning = early_signal_warning(self.params)
        if warning:
            log.warning("git-slurm: %s", warning)
        return super().launch(job_overrides, initial_job_idx)


def early_signal_warning(params: Dict[str, Any]) -> Optional[str]:
    """SLURM sends USR2 `signal_delay_s` before the time limit: with a limit no longer than
    that, it signals each job at its first scheduler tick, maybe before submitit has installed
    its handler, and the job dies of the signal (as upstream; only said here)."""
    timeout_min, delay = params.get("timeout_min"), params.get("signal_delay_s")
    if timeout_min is None or delay is None or timeout_min * 60 > delay:
        return None
    return (
        f"timeout_min={timeout_min} is not longer than signal_delay_s={delay}: SLURM signals "
        "every job (USR2) as soon as it starts, which can kill it before submitit handles the "
        "signal; raise hydra.launcher.timeout_min or lower hydra.launcher.signal_delay_s"
    )


def _first_fixed_folder(folder: Path) -> Path:
    """The deepest ancestor of submitit's folder without a `%j`-style placeholder."""
    while "%" in str(folder):
        folder = folder.parent
    return folder
