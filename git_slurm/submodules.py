"""Submodules in a snapshot worktree, checked out on request from the user's own clones.

The snapshot commit records each submodule at a commit (as `git add` does). With
`--submodules`, each is then checked out inside the worktree at exactly that commit as a
`git worktree` of the submodule's clone in the user's checkout: no network, no object copied,
nested submodules likewise. A submodule that is not cloned here, or whose clone lacks the
recorded commit, is an error (the jobs would miss code), never a fetch.
"""

from __future__ import annotations

import os
from pathlib import Path

from git_slurm import lfs
from git_slurm.errors import GitSlurmError, UsageError
from git_slurm.gitcli import Git, read_git_file, run_git
from git_slurm.materialize import read_only_tree
from git_slurm.names import Oid
from git_slurm.records import admin_dir_of

GITLINK = "160000"


def gitlinks(git: Git, commit: Oid) -> list[tuple[str, Oid]]:
    """(path, recorded commit) of every submodule in `commit`'s tree."""
    out = git.run("ls-tree", "-r", "-z", "--full-tree", commit)[1]
    found = []
    for entry in filter(None, out.split("\0")):
        meta, _, rel = entry.partition("\t")
        mode, _, oid = meta.split(" ")
        if mode == GITLINK:
            found.append((rel, Oid(oid)))
    return found


def local_clone(origin: Path, rel: str, shown: str) -> Git:
    """The user's clone of the submodule at `rel` of the checkout `origin` (its common dir);
    `shown` is how the user knows it (its path in the top checkout)."""
    where = origin / rel
    facts: list[str] = []
    if where.is_dir():
        asked = ["rev-parse", "--show-toplevel", "--git-common-dir"]
        rc, out, _ = run_git(asked, cwd=where, check=False)
        facts = out.splitlines() if rc == 0 else []
    if len(facts) != 2 or Path(facts[0]).resolve() != where.resolve():  # else: the superproject
        how = f"run `git submodule update --init {rel}` first, or snapshot without submodules"
        raise UsageError(f"submodule {shown} is not cloned in {origin}: {how}")
    return Git((where / facts[1]).resolve(), None)


def check_out(
    git: Git, origin: Path, worktree: Path, commit: Oid, shown_prefix: str = ""
) -> list[str]:
    """Check out every submodule of `commit` (nested ones too) in `worktree`, which holds
    `commit`'s files; the worktrees made, relative to `worktree`, outer ones first."""
    made: list[str] = []
    try:
        for rel, recorded in gitlinks(git, commit):
            shown = f"{shown_prefix}{rel}"
            clone = local_clone(origin, rel, shown)
            if clone.run("cat-file", "-e", f"{recorded}^{{commit}}", check=False)[0] != 0:
                raise UsageError(
                    f"submodule {shown}: its recorded commit {recorded[:12]} is not in its "
                    f"clone (`git -C {shown} fetch` gets it); git-slurm never downloads"
                )
            # not locked: the snapshot worktree around it is, and a worktree that vanished
            # with it is then only a prunable entry of the submodule's clone
            clone.run("worktree", "add", "--quiet", "--detach", str(worktree / rel), recorded)
            made.append(rel)
            nested = worktree / rel
            admin = admin_dir_of(nested)
            if admin is not None and lfs.uses_lfs(clone):
                lfs.fill_in(Git(admin, nested))
            read_only_tree(nested)
            inner = check_out(clone, origin / rel, nested, recorded, f"{shown}/")
            made.extend(f"{rel}/{path}" for path in inner)
    except BaseException:
        remove(worktree, made)
        raise
    return made


def found_in(worktree: Path) -> list[str]:
    """The submodule worktrees inside `worktree` (a `.git` file below its top, never behind a
    symlink): for a snapshot killed before its record named them."""
    found = []
    for dirpath, _, filenames in os.walk(worktree):  # os.walk never enters a symlink
        if ".git" in filenames and Path(dirpath) != worktree:
            found.append(Path(dirpath).relative_to(worktree).as_posix())
    return found


def remove(worktree: Path, made: list[str]) -> None:
    """Remove submodule worktrees `check_out` made in `worktree`, innermost first, each with
    its own clone's `git worktree remove` (a clone that is gone leaves nothing to tidy)."""
    for rel in sorted(made, key=lambda p: p.count("/"), reverse=True):
        path = worktree / rel
        admin = admin_dir_of(path)
        if admin is None:
            continue
        try:
            common = (admin / read_git_file(admin / "commondir").strip()).resolve()
        except OSError:
            continue
        try:
            Git(common, None).run("worktree", "remove", "--force", str(path), check=False)
        except GitSlurmError:
            continue
