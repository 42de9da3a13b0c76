"""Where a job's Python finds the user's code: the snapshot worktree, never the live checkout.

A job's interpreter imports the user's modules while it unpickles the submitted function, before
any code of ours runs in it, so everything must be in place when it starts: its working directory
(the launch directory's counterpart in the worktree: `python -m` puts it first on sys.path) and a
PYTHONPATH whose entries into the original checkout point into the worktree instead. PYTHONPATH
entries come before site-packages and before the `.pth` paths of editable installs, and the
PathFinder that reads them runs before setuptools' editable meta-path finders, so the worktree
copies win for modules found via the launch directory, PYTHONPATH, or an editable install alike.
"""

from __future__ import annotations

import os
import shlex
import sys
import sysconfig
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Optional

EDITABLE_FINDER_PREFIX = "__editable__"  # setuptools' generated `__editable___<dist>_finder`


@dataclass(frozen=True)
class PathMap:
    """Maps paths of the original checkout to their copies in the snapshot worktree."""

    origin: Path  # root of the original checkout (resolved)
    worktree: Path  # root of the snapshot worktree (resolved)

    def into_worktree(self, path: str) -> Optional[str]:
        """The worktree's copy of `path` when `path` lies in the checkout and the snapshot has
        it (ignored paths such as a `.venv` inside the repository have no copy), else None."""
        real = Path(os.path.realpath(path))
        if real == self.worktree or self.worktree in real.parents:
            return None  # already in the snapshot (worktrees may live inside the repository)
        if real != self.origin and self.origin not in real.parents:
            return None
        copy = self.worktree / real.relative_to(self.origin)
        return str(copy) if copy.exists() else None

    def in_checkout(self, path: str) -> bool:
        real = Path(os.path.realpath(path))
        inside_origin = real == self.origin or self.origin in real.parents
        return inside_origin and not (real == self.worktree or self.worktree in real.parents)


@dataclass(frozen=True)
class ImportRoots:
    """Directories imports may come from, in the order the launching process searches them."""

    entries: tuple[str, ...]  # `sys.path` entries that came from PYTHONPATH or lie in the checkout
    editable: tuple[str, ...]  # parents of packages mapped by setuptools' editable finders
    unmappable: tuple[str, ...]  # checkout paths whose modules the snapshot cannot provide


def pythonpath_entries(environ: Mapping[str, str], cwd: str) -> list[str]:
    """PYTHONPATH as absolute paths (relative entries are relative to the launch directory)."""
    raw = environ.get("PYTHONPATH", "")
    return [os.path.normpath(os.path.join(cwd, entry)) for entry in raw.split(os.pathsep) if entry]


def editable_finders(
    meta_path: Iterable[object], modules: Mapping[str, ModuleType]
) -> list[ModuleType]:
    """The modules of setuptools' editable finders installed in `meta_path`."""
    found = []
    for finder in meta_path:
        module = modules.get(getattr(finder, "__module__", "") or "")
        if module is None or not module.__name__.startswith(EDITABLE_FINDER_PREFIX):
            continue
        if isinstance(getattr(module, "MAPPING", None), dict) and module not in found:
            found.append(module)
    return found


def editable_locations(finders: Iterable[ModuleType]) -> list[tuple[str, str]]:
    """(import name, path) of every package or module the editable finders map."""
    pairs: list[tuple[str, str]] = []
    for module in finders:
        pairs.extend((str(k), str(v)) for k, v in getattr(module, "MAPPING", {}).items())
        for name, paths in getattr(module, "NAMESPACES", {}).items():
            pairs.extend((str(name), str(p)) for p in paths)
    return pairs


def _under_any(path: str, prefixes: Iterable[str]) -> bool:
    real = Path(os.path.realpath(path))
    for prefix in prefixes:
        top = Path(os.path.realpath(prefix))
        if real == top or top in real.parents:
            return True
    return False


def _importable_as(name: str, path: str) -> bool:
    """Whether a plain path search in `path`'s parent finds `name` at `path`."""
    leaf = Path(path)
    return name.rpartition(".")[2] in (leaf.name, leaf.stem)


def import_roots(
    pm: PathMap,
    sys_path: Sequence[str],
    environ: Mapping[str, str],
    cwd: str,
    editable: Sequence[tuple[str, str]],
    installed: Sequence[str] = (),
) -> ImportRoots:
    """Collect what the job's PYTHONPATH must cover, from the launching process' view.

    `installed` are where the interpreter keeps installed code: a virtualenv inside the
    repository is ignored by git, is the same for the job, and is no code of the snapshot's.
    """
    from_env = set(pythonpath_entries(environ, cwd))
    entries, unmappable = [], []
    for raw in sys_path:
        entry = os.path.normpath(os.path.join(cwd, raw)) if raw else cwd
        if entry in from_env:
            entries.append(entry)
        elif pm.in_checkout(entry) and os.path.exists(entry) and not _under_any(entry, installed):
            entries.append(entry)  # not placeholders like setuptools' `__editable__...` hook
    parents = []
    for name, path in editable:
        if not pm.in_checkout(path):
            continue
        if _importable_as(name, path):
            parents.append(str(Path(path).parent))
        else:
            unmappable.append(path)  # a renamed package dir: only its finder knows it
    return ImportRoots(tuple(entries), tuple(parents), tuple(unmappable))


def job_pythonpath(pm: PathMap, roots: ImportRoots) -> tuple[list[str], list[str]]:
    """(PYTHONPATH for the job, checkout paths the snapshot has no copy of).

    Entries into the checkout become their worktree copies, in the launching process' order;
    entries elsewhere stay. A checkout path the snapshot lacks (ignored, or generated) keeps its
    place, and is reported so the launcher can say its modules would come from the live tree.
    """
    result: list[str] = []
    missing = list(roots.unmappable)
    for entry in [*roots.entries, *roots.editable]:
        if not pm.in_checkout(entry):
            result.append(entry)
            continue
        copy = pm.into_worktree(entry)
        if copy is None:
            missing.append(entry)
            copy = entry
        result.append(copy)
    return _dedup(result), _dedup(missing)


def _dedup(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def current_import_roots(pm: PathMap, cwd: str) -> ImportRoots:
    """`import_roots` for this very process (the one that launches the jobs)."""
    finders = editable_finders(sys.meta_path, sys.modules)
    # where this interpreter keeps installed code (a virtualenv inside the repository is such
    # a place), not its prefixes: a Python built with --prefix=$HOME has the checkout under one
    installed = {
        sysconfig.get_path(kind) for kind in ("stdlib", "platstdlib", "purelib", "platlib")
    }
    return import_roots(
        pm, sys.path, os.environ, cwd, editable_locations(finders), sorted(installed)
    )


def shell_setup(workdir: Path, pythonpath: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Shell lines that put a job into the snapshot before its Python starts.

    They run before any setup lines of the user, so that `$PWD` in those means the worktree
    too. A worktree the node cannot see ends the job at once: sbatch's own `--chdir` would
    fall back to /tmp and run the live code silently. Each line must also work joined by
    `&&` (submitit's local executor runs them that way), so there are no comments.
    """
    lines = [f"cd -- {shlex.quote(str(workdir))} || exit 1"]
    if pythonpath:
        lines.append(f"export PYTHONPATH={shlex.quote(os.pathsep.join(pythonpath))}")
    else:
        lines.append("unset PYTHONPATH")
    lines.extend(f"export {name}={shlex.quote(value)}" for name, value in env.items())
    return lines
