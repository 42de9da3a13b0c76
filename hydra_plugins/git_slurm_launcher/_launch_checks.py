"""What a launch refuses, or warns about, before it submits anything.

A mistake that would only show once a job starts (hours later, in the queue) or that would
quietly run the live tree is caught here, while the user still watches the terminal.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import shlex
from typing import Any, Callable, Dict, List, Optional, Sequence

from hydra.errors import CompactHydraException

from hydra_plugins.git_slurm_launcher.config import SnapshotConf

SNAPSHOT_KEYS = tuple(f.name for f in dataclasses.fields(SnapshotConf))

# `pip install` (also `python -m pip`, `uv pip`, `pip3`) of something editable or local
PIP_INSTALL = re.compile(r"(?:^|[\s;&|(])(?:uv\s+)?pip3?\s+install\s+(?P<args>[^;&|]*)")
SETUP_PY = re.compile(r"\bsetup\.py\s+(?:develop|install)\b")
PathTest = Callable[[str], bool]


class SnapshotLaunchError(CompactHydraException):
    """Nothing was submitted, and this line says why (Hydra prints just this line)."""


def unknown_snapshot_key(params: Dict[str, Any]) -> Optional[str]:
    """The refusal for a key under hydra.launcher.snapshot that git-slurm does not know: with
    `+hydra.launcher.snapshot.enable=true` (a typo Hydra's own hint suggests) the snapshot
    would stay off and the jobs would run the live tree."""
    snapshot = params.get("snapshot") or {}
    for key in snapshot:
        if key in SNAPSHOT_KEYS:
            continue
        close = difflib.get_close_matches(str(key), SNAPSHOT_KEYS, n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        return (
            f"git-slurm: no job submitted: unknown key hydra.launcher.snapshot.{key}{hint}; "
            f"the valid keys are {', '.join(SNAPSHOT_KEYS)}"
        )
    return None


def _path_args(args: str) -> List[str]:
    """The arguments of a `pip install` that name a directory or file, not a requirement."""
    try:
        words = shlex.split(args)
    except ValueError:
        words = args.split()
    paths, editable = [], False
    for word in words:
        if word in ("-e", "--editable"):
            editable = True
            continue
        if word.startswith("--editable="):
            word = word.split("=", 1)[1]
            editable = True
        looks_local = word == "." or word.startswith(("./", "../", "/", ".["))
        if (editable and "://" not in word and not word.startswith("-")) or looks_local:
            paths.append(word.split("[", 1)[0] or ".")
        editable = False
    return paths


def installing_setup_lines(setup: Optional[Sequence[str]], in_repository: PathTest) -> List[str]:
    """The `setup` lines that install the repository's code into the shared environment.
    They run in the snapshot worktree: a relative path is the snapshot's."""
    found = []
    for line in setup or ():
        pip = PIP_INSTALL.search(line)
        paths = _path_args(pip.group("args")) if pip else []
        local = any(not os.path.isabs(p) or in_repository(p) for p in paths)
        if local or SETUP_PY.search(line):
            found.append(line)
    return found


def install_warning(line: str) -> str:
    return (
        f"setup line `{line}` runs in the snapshot worktree and installs it into the "
        "environment the jobs share with you: your own (editable) install then points at the "
        "snapshot, which `git slurm-gc` removes later, and concurrent launches overwrite each "
        "other's. The jobs import the snapshot's packages without it (git-slurm puts the "
        "worktree first on their PYTHONPATH): drop the line, or install into a virtualenv of "
        "the job's own"
    )
