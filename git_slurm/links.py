"""Links from a snapshot worktree back to the original checkout, for everything jobs write.

A link path must stay inside the repository, also when resolved through symlinks: otherwise a
job's writes (or the `--link` argument of a hostile config) could reach anywhere.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from git_slurm import faults
from git_slurm.errors import UsageError


@dataclass(frozen=True)
class Link:
    rel: str  # path relative to the repository root, posix form
    path: Path  # the symlink inside the worktree
    target: Path  # what it points to in the original checkout


def normalize_link(toplevel: Path, cwd_prefix: str, given: str) -> str:
    """`given` (relative to the current directory) as a path relative to the repository root."""
    if not given or os.path.isabs(given):
        raise UsageError(f"link path {given!r} must be relative to the current directory")
    rel = os.path.normpath(os.path.join(cwd_prefix, given)).replace(os.sep, "/")
    parts = PurePosixPath(rel).parts
    if rel in (".", "") or parts[0] == ".." or ".git" in parts:
        raise UsageError(f"link path {given!r} leaves the repository")
    resolved = (toplevel / rel).resolve()
    if resolved != toplevel and toplevel not in resolved.parents:
        raise UsageError(f"link path {given!r} resolves to {resolved}, outside the repository")
    return rel


def plan_links(toplevel: Path, cwd_prefix: str, given: list[str]) -> list[str]:
    """Validated, de-duplicated repository-relative link paths (before anything is made)."""
    seen: dict[str, None] = {}
    for path in given:
        seen.setdefault(normalize_link(toplevel, cwd_prefix, path), None)
    return list(seen)


def make_links(worktree: Path, origin: Path, rels: list[str]) -> list[Link]:
    """Create missing targets in the original (as directories) and the links in the worktree."""
    made = []
    for rel in rels:
        target = origin / rel
        if not os.path.lexists(target):
            target.mkdir(parents=True)
        path = worktree / rel
        _refuse_symlinked_parents(worktree, rel)
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)  # a tracked copy inside our own fresh worktree
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
        made.append(Link(rel=rel, path=path, target=target))
        faults.point("links")
    return made


def _refuse_symlinked_parents(worktree: Path, rel: str) -> None:
    """Never create a link through a symlink the snapshot itself contains."""
    current = worktree
    for part in PurePosixPath(rel).parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise UsageError(f"link path {rel!r} runs through the symlink {part!r} in the snapshot")
