"""Links from a snapshot worktree back to the original checkout, for everything jobs write.

A link path must stay inside the repository, also when resolved through symlinks: otherwise a
job's writes (or the `--link` argument of a hostile config) could reach anywhere.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional

from git_slurm import faults
from git_slurm.errors import UsageError
from git_slurm.gitcli import Git


@dataclass(frozen=True)
class Link:
    rel: str  # path relative to the repository root, posix form
    path: Path  # the symlink inside the worktree
    target: Path  # what it points to in the original checkout


def normalize_link(toplevel: Path, cwd_prefix: str, given: str) -> str:
    """`given` (relative to the current directory) as a path relative to the repository root.

    The path itself may be a symlink anywhere (`multirun` -> scratch, as clusters have it):
    the worktree's link points at this very path, so jobs write where the user's own runs
    would, and nothing is created there. What lies *above* it must stay in the repository,
    also through symlinks: there a missing target directory would be created."""
    if not given or os.path.isabs(given):
        raise UsageError(f"link path {given!r} must be relative to the current directory")
    rel = os.path.normpath(os.path.join(cwd_prefix, given)).replace(os.sep, "/")
    parts = PurePosixPath(rel).parts
    if rel in (".", "") or parts[0] == ".." or ".git" in parts:
        raise UsageError(f"link path {given!r} leaves the repository")
    above = (toplevel / rel).parent.resolve()
    if above != toplevel and toplevel not in above.parents:
        raise UsageError(
            f"link path {given!r} lies in {above}, outside the repository (through a symlink)"
        )
    return rel


def plan_links(git: Git, toplevel: Path, cwd_prefix: str, given: list[str]) -> list[str]:
    """Validated, de-duplicated repository-relative link paths (before anything is made)."""
    seen: dict[str, None] = {}
    for path in given:
        seen.setdefault(normalize_link(toplevel, cwd_prefix, path), None)
    rels = list(seen)
    _refuse_overlaps(rels)
    _refuse_tracked(git, rels)
    return rels


def _refuse_overlaps(rels: list[str]) -> None:
    """`outputs` and `outputs/sub`: the inner one would be made through the outer link."""
    for rel in rels:
        outer = next((o for o in rels if rel.startswith(f"{o}/")), None)
        if outer is not None:
            raise UsageError(
                f"link paths {outer!r} and {rel!r} overlap: {rel!r} lies inside {outer!r}, "
                f"which is linked already; link only {outer!r}"
            )


# git's empty blob (SHA-1 and SHA-256 repositories)
EMPTY_BLOBS = frozenset({
    "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391",
    "473a0f4c3be8a93681a267e3b1e9a7dcda1185436fe141f7749120a303721813",
})  # fmt: skip
GIT_METADATA = frozenset({".gitignore", ".gitattributes"})


def _placeholder(mode: str, oid: str, path: str) -> bool:
    """A file many repositories track only so that an outputs directory exists, or to ignore
    what lands there: `.gitignore`/`.gitattributes`, or an empty dotfile (`.gitkeep`, `.keep`).
    No job imports or reads it, so it is no code (an empty `__init__.py` is: it makes a
    package)."""
    name = path.rpartition("/")[2]
    if mode not in ("100644", "100755") or not name.startswith("."):
        return False
    return name in GIT_METADATA or oid in EMPTY_BLOBS


def _refuse_tracked(git: Git, rels: list[str]) -> None:
    """A link path is outputs, never code: a tracked file there would run live, not from the
    snapshot (its link points at the checkout). Placeholders (`outputs/.gitkeep`) are not code."""
    if not rels:
        return
    specs = [f":(top,literal){rel}" for rel in rels]
    out = git.out("ls-files", "-s", "-z", "--full-name", "--", *specs)
    tracked = []
    for entry in filter(None, out.split("\0")):
        info, _, path = entry.partition("\t")
        mode, oid = info.split()[:2]
        if not _placeholder(mode, oid, path):
            tracked.append(path)
    for rel in rels:
        inside = [t for t in tracked if t == rel or t.startswith(f"{rel}/")]
        if inside:
            what = f"is the tracked file {rel!r}" if inside == [rel] else (
                f"holds {len(inside)} tracked file{'s' if len(inside) > 1 else ''} "
                f"({', '.join(inside[:3])}{', ...' if len(inside) > 3 else ''})"
            )  # fmt: skip
            raise UsageError(
                f"link path {rel!r} {what}: link paths hold outputs, and a tracked file there "
                f"would run from this checkout, not the snapshot; link another path, or untrack "
                f"it (git rm -r --cached -- {rel})"
            )


def unignored_note(git: Git, toplevel: Path, rels: list[str]) -> Optional[str]:
    """The snapshot leaves every link path out; when git does not ignore one that exists,
    say so (once) with the `.gitignore` lines that make git agree."""
    present = [rel for rel in rels if _holds_something(toplevel / rel)]
    if not present:
        return None
    stdin = "".join(f"{rel}\0" for rel in present)
    rc, out, _ = git.run("check-ignore", "-z", "--stdin", stdin=stdin, check=False)
    ignored = set(out.split("\0")) if rc == 0 else set()
    unignored = [rel for rel in present if rel not in ignored]
    if not unignored:
        return None
    # `dir/` matches a directory only; a symlink to scratch needs the pattern without it
    lines = " ".join(f"/{rel}/" if _real_dir(toplevel / rel) else f"/{rel}" for rel in unignored)
    return (
        f"left out of the snapshot (link paths hold outputs, not code): "
        f"{', '.join(unignored)}; git does not ignore them: add {lines} to .gitignore"
    )


def _holds_something(path: Path) -> bool:
    """Would `git add -A` take something from `path`? (An empty directory, like the link
    targets a snapshot makes, it would not.)"""
    if not _real_dir(path):
        return os.path.lexists(path)
    with os.scandir(path) as entries:
        return next(entries, None) is not None


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


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
