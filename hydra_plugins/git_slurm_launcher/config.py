"""Structured configs of `hydra/launcher=submitit_local` and `submitit_slurm`.

Every field, default and comment of hydra-submitit-launcher 1.2.0 is kept, plus what Hydra's
main branch documents (`python`, `srun_args`, `tasks_per_node: null`), plus git-slurm's own
`snapshot` block and `wait`. Only Hydra and dataclasses are imported here: Hydra imports this
module for every app it runs, while looking for plugins, so it must stay cheap. (No
`from __future__ import annotations`: Hydra's plugin scanner runs this module before it is in
sys.modules, where dataclasses cannot resolve string annotations.)
"""

import importlib.util
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.config_store import ConfigStore
from hydra.plugins.search_path_plugin import SearchPathPlugin

UPSTREAM = "hydra_plugins.hydra_submitit_launcher"
PROVIDER = "git-slurm"
LAUNCHERS = "hydra_plugins.git_slurm_launcher.launcher"

log = logging.getLogger(__name__)


@dataclass
class SnapshotConf:
    """Run every job of a launch from one git snapshot of the code (`git slurm-snapshot`)."""

    # true: snapshot the working tree once per launch; every job runs in that worktree
    enabled: bool = False
    # snapshot branches are named <branch_prefix>-YYYYMMDD-HHMMSS
    branch_prefix: str = "slurm-job"
    # paths, relative to the launch directory, that the worktree links back to this checkout
    symlink_paths: List[str] = field(default_factory=lambda: ["outputs", "multirun", ".submitit"])
    # push the snapshot branch when the repository has a remote (a failed push only warns);
    # false: never push
    push_to_remote: bool = True
    # where snapshot worktrees are made; null: git config slurm.worktreeDir, else in .git
    worktree_dir: Optional[str] = None
    # true: check submodules out in the worktree at their recorded commits, from their local
    # clones (never over the network); null: git config slurm.submodules, else false
    submodules: Optional[bool] = None


@dataclass
class BaseQueueConf:
    """Configuration shared by all executors"""

    submitit_folder: str = "${hydra.sweep.dir}/.submitit/%j"

    # maximum time for the job in minutes
    timeout_min: int = 60
    # number of cpus to use for each task
    cpus_per_task: Optional[int] = None
    # number of gpus to use on each node
    gpus_per_node: Optional[int] = None
    # number of tasks to spawn on each node (null: let SLURM decide, no --ntasks-per-node)
    tasks_per_node: Optional[int] = 1
    # memory to reserve for the job on each node (in GB)
    mem_gb: Optional[int] = None
    # number of nodes to use for the job
    nodes: int = 1
    # name of the job
    name: str = "${hydra.job.name}"
    # redirect stderr to stdout
    stderr_to_stdout: bool = False


@dataclass
class SlurmQueueConf(BaseQueueConf):
    """Slurm configuration overrides and specific parameters"""

    _target_: str = f"{LAUNCHERS}.SlurmLauncher"

    # Params are used to configure sbatch, for more info check:
    # https://github.com/facebookincubator/submitit/blob/master/submitit/slurm/slurm.py

    # Following parameters are slurm specific
    # More information: https://slurm.schedmd.com/sbatch.html
    #
    # slurm partition to use on the cluster
    partition: Optional[str] = None
    qos: Optional[str] = None
    comment: Optional[str] = None
    constraint: Optional[str] = None
    exclude: Optional[str] = None
    gres: Optional[str] = None
    cpus_per_gpu: Optional[int] = None
    gpus_per_task: Optional[int] = None
    mem_per_gpu: Optional[str] = None
    mem_per_cpu: Optional[str] = None
    account: Optional[str] = None

    # Following parameters are submitit specifics
    #
    # USR1 signal delay before timeout
    signal_delay_s: int = 120
    # Maximum number of retries on job timeout.
    # Change this only after you confirmed your code can handle re-submission
    # by properly resuming from the latest stored checkpoint.
    # check the following for more info on slurm_max_num_timeout
    # https://github.com/facebookincubator/submitit/blob/master/docs/checkpointing.md
    max_num_timeout: int = 0
    # Useful to add parameters which are not currently available in the plugin.
    # Eg: {"mail-user": "blublu@fb.com", "mail-type": "BEGIN"}
    additional_parameters: Dict[str, Any] = field(default_factory=dict)
    # Maximum number of jobs running in parallel
    array_parallelism: int = 256
    # A list of commands to run in sbatch before running srun
    setup: Optional[List[str]] = None
    # Any additional arguments that should be passed to srun
    srun_args: Optional[List[str]] = None
    # Python executable or command that runs the job (null: the launching interpreter),
    # e.g. "apptainer exec --nv image.sif python"
    python: Optional[str] = None

    # git-slurm: run the jobs from a snapshot of the code
    snapshot: SnapshotConf = field(default_factory=SnapshotConf)
    # false: return as soon as the jobs are queued, without waiting for their results
    wait: bool = True


@dataclass
class LocalQueueConf(BaseQueueConf):
    _target_: str = f"{LAUNCHERS}.LocalLauncher"

    # git-slurm: run the jobs from a snapshot of the code
    snapshot: SnapshotConf = field(default_factory=SnapshotConf)
    # false: return as soon as the jobs are queued, without waiting for their results
    wait: bool = True


def upstream_installed() -> bool:
    """Whether hydra-submitit-launcher is importable beside this package."""
    try:
        return importlib.util.find_spec(UPSTREAM) is not None
    except (ImportError, ValueError):
        return False


def register() -> None:
    """Store the two launcher choices in Hydra's ConfigStore."""
    store = ConfigStore.instance()
    store.store(
        group="hydra/launcher", name="submitit_local", node=LocalQueueConf(), provider=PROVIDER
    )
    store.store(
        group="hydra/launcher", name="submitit_slurm", node=SlurmQueueConf(), provider=PROVIDER
    )


class TakeOverFromUpstream(SearchPathPlugin):
    """Makes git-slurm's launcher configs win over hydra-submitit-launcher's, and says so.

    Both packages store `hydra/launcher/submitit_local` and `submitit_slurm`, and the last one
    stored wins. Hydra's plugin scan imports (and re-runs) plugin modules in file-system order,
    so which package stored last would be a coin toss. Hydra asks search-path plugins for their
    paths only after that scan, so storing ours again here decides it, every time.
    """

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if not upstream_installed():
            return
        register()
        log.warning(
            "git-slurm: hydra-submitit-launcher is installed too; hydra/launcher=submitit_local "
            "and submitit_slurm use git-slurm's drop-in launcher (same settings, plus "
            "`snapshot` and `wait`). To silence this: pip uninstall hydra-submitit-launcher"
        )


register()
