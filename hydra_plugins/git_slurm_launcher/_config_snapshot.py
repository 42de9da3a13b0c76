"""A snapshot launch's configs come from the snapshot: config search paths moved into it.

Hydra composes each job's config in the job, from the config loader it unpickles, and the
sweeper composes later batches in the launching process with that same loader. Re-rooting every
search path entry that lies in the original checkout (the primary config dir, `--config-dir`,
`file://` entries of `hydra.searchpath`) into the snapshot worktree, in that loader, freezes
the YAML at launch for every job and every batch, without composing any config more often than
hydra-submitit-launcher does. `pkg://` entries are left alone: a job imports packages from the
worktree (see git_slurm.launch_env), so importlib's resources read them there.
"""

from __future__ import annotations

import copy
import os
from typing import List, Optional

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.config_repository import ConfigRepository
from hydra.core.config_loader import ConfigLoader
from hydra.core.config_search_path import ConfigSearchPath

from git_slurm.launch_env import PathMap

SCHEME_SEP = "://"


def local_path(entry: str) -> Optional[str]:
    """The directory a search path entry reads from, if it is a plain or `file://` one."""
    scheme, sep, rest = entry.partition(SCHEME_SEP)
    if not sep:
        return entry
    return rest if scheme == "file" else None


def reroot(entry: str, paths: PathMap) -> str:
    """`entry` pointing into the worktree when it lies in the checkout and the snapshot has it.

    A relative entry is relative to the current directory (Hydra opens it so): the launch
    directory in the launching process, its worktree counterpart in a job.
    """
    local = local_path(entry)
    if local is None:
        return entry
    moved = paths.into_worktree(os.path.abspath(local))
    if moved is None:
        return entry
    return f"file://{moved}" if SCHEME_SEP in entry else moved


def reroot_search_path(search_path: ConfigSearchPath, paths: PathMap) -> None:
    for element in search_path.get_path():
        if element.path is not None:
            element.path = reroot(element.path, paths)


class SnapshotConfigRepository(ConfigRepository):
    """Hydra's config repository, whose sources (also those `hydra.searchpath` adds while a
    config is composed) read the snapshot's copy of every config dir in the checkout."""

    def __init__(self, config_search_path: ConfigSearchPath, paths: PathMap) -> None:
        self.paths = paths
        super().__init__(config_search_path)

    def initialize_sources(self, config_search_path: ConfigSearchPath) -> None:
        rerooted = copy.deepcopy(config_search_path)
        reroot_search_path(rerooted, self.paths)
        super().initialize_sources(rerooted)


def freeze_config_sources(loader: ConfigLoader, paths: PathMap) -> List[str]:
    """Make `loader` compose from the snapshot; return the checkout's config dirs that the
    snapshot lacks (ignored by git), whose YAML stays live."""
    if not isinstance(loader, ConfigLoaderImpl):
        raise TypeError(f"git-slurm cannot freeze the configs of {type(loader).__name__}")
    reroot_search_path(loader.config_search_path, paths)
    loader.repository = SnapshotConfigRepository(loader.config_search_path, paths)
    lacking = []
    for element in loader.config_search_path.get_path():
        local = local_path(element.path or "")
        if local is not None and paths.in_checkout(os.path.abspath(local)):
            lacking.append(local)
    return lacking
