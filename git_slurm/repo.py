"""Finding the user's checkout the way git does (cwd, GIT_DIR, GIT_WORK_TREE, linked worktrees)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from git_slurm.errors import ExitCode, GitSlurmError, git_reason
from git_slurm.gitcli import Git, run_git
from git_slurm.head import HEAD_REVISIONS, Head, head_from_lines


@dataclass(frozen=True)
class Checkout:
    """The work tree a command runs in, and where its repository lives."""

    toplevel: Path  # root of this work tree (the original checkout)
    git_dir: Path  # this work tree's own git dir (differs from common_dir in a linked worktree)
    common_dir: Path  # the repository's shared git dir: objects, refs, worktrees/
    prefix: str  # the current directory relative to toplevel, '' or 'a/b'
    git: Git

    @property
    def cwd(self) -> Path:
        return self.toplevel / self.prefix if self.prefix else self.toplevel


def _rev_parse(cwd: Path, *args: str) -> list[str]:
    """rev-parse's answers, as git finds the repository for the user; git's own reason when it
    finds none it will work in (dubious ownership, a bad config line, an unknown repository
    format, GIT_DIR naming nothing): the user can act on that, not on "not a repository"."""
    rc, out, err = run_git(["rev-parse", *args], cwd=cwd, check=False, user_environment=True)
    if rc == 0:
        return out.splitlines()
    said = git_reason(err)
    if not said or said.startswith("not a git repository (or any of the parent directories)"):
        said = f"not a git repository: {cwd}"
    elif said == "this operation must be run in a work tree":  # e.g. inside .git
        said = f"not inside a work tree: {cwd}"
    raise GitSlurmError(said, ExitCode.NOT_A_REPOSITORY)


FACTS = ("--is-bare-repository", "--is-inside-work-tree", "--absolute-git-dir", "--git-common-dir")
WHERE = ("--show-toplevel", "--show-prefix")


def discover(cwd: Optional[Path] = None) -> Checkout:
    """The checkout containing `cwd`; a bare repository or no repository is an error."""
    return discover_with_head(cwd)[0]


def discover_with_head(cwd: Optional[Path] = None) -> tuple[Checkout, Optional[Head]]:
    """The checkout, and what its HEAD is, in one `git rev-parse` when HEAD has a commit and
    `cwd` is in a work tree (each process start costs more than rev-parse's own work); any
    other case (no commit yet, bare, no repository) asks again step by step, for git's own
    words, and leaves HEAD to `read_head` (None)."""
    here = (cwd or Path.cwd()).resolve()
    rc, out, _ = run_git(
        ["rev-parse", *FACTS, *WHERE, *HEAD_REVISIONS], cwd=here, check=False, user_environment=True
    )
    lines = out.split("\n")
    # facts, toplevel, the prefix (a line even when empty: git >= 2.25), HEAD's three, `--`, ''
    if rc == 0 and len(lines) == len(FACTS) + 2 + 3 + 2 and lines[0] == "false":
        _, inside, git_dir, common, toplevel, prefix = lines[:6]
        return _checkout(here, inside, git_dir, common, [toplevel, prefix]), head_from_lines(
            lines[6:9]
        )
    return _discover_step_by_step(here), None


def _discover_step_by_step(here: Path) -> Checkout:
    bare, inside, git_dir, common = _rev_parse(here, *FACTS)
    if bare == "true":
        raise GitSlurmError(
            f"{git_dir} is a bare repository; run this inside a work tree",
            ExitCode.NOT_A_REPOSITORY,
        )
    where = _rev_parse(here, *WHERE)
    if not where:
        raise GitSlurmError(f"not inside a work tree: {here}", ExitCode.NOT_A_REPOSITORY)
    return _checkout(here, inside, git_dir, common, where)


def _checkout(here: Path, inside: str, git_dir: str, common: str, where: list[str]) -> Checkout:
    toplevel = Path(where[0]).resolve()
    # outside the work tree named by GIT_WORK_TREE, git works on the whole tree: so do we
    prefix = where[1].rstrip("/") if inside == "true" and len(where) > 1 else ""
    common_dir = (here / common).resolve()
    return Checkout(
        toplevel=toplevel,
        git_dir=Path(git_dir).resolve(),
        common_dir=common_dir,
        prefix=prefix,
        git=Git(Path(git_dir).resolve(), toplevel),
    )
