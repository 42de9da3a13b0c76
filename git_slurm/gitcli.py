"""The one place that runs the git executable.

The tool's own git calls must never be redirected or observed by the user's environment:
repository-local variables (GIT_DIR, GIT_INDEX_FILE, ... as exported inside a git hook) are
stripped and the repository is named explicitly; the user's hooks are switched off.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from subprocess import Popen
from typing import Optional

from plumbum import local

from git_slurm.errors import ExitCode, GitSlurmError, git_reason
from git_slurm.processes import OWN_GROUP, kill_tree

# `git rev-parse --local-env-vars` on git 2.39, plus the ones that only make sense together;
# but not the configuration given to this very command (`git -c slurm.x=y slurm-snapshot`,
# GIT_CONFIG_COUNT/KEY_n/VALUE_n): git drops it only for commands in *other* repositories,
# and ours run in the user's, so it holds for them as it would for any git command there.
REPO_LOCAL_VARS = (
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_OBJECT_DIRECTORY",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_GRAFT_FILE",
    "GIT_INDEX_FILE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
    "GIT_PREFIX",
    "GIT_INTERNAL_SUPER_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_COMMON_DIR",
)

# `/dev/null/<hook>` can never exist, so no hook of the user's runs for our own git calls.
NO_HOOKS = ("-c", "core.hooksPath=/dev/null")
# Every index our calls write is one file, whatever core.splitIndex says: a snapshot worktree's
# index is copied to link the next one from it, and a split one names a shared part beside it
# (the capture's private index would also leave a new shared part in the user's git dir).
WHOLE_INDEX = ("-c", "core.splitIndex=false")

# git-lfs's smudge filter downloads content that is not in the local store: for our own calls
# it writes the pointer instead (git_slurm.lfs then fills in what the local store has).
NEVER_DOWNLOAD = {"GIT_LFS_SKIP_SMUDGE": "1"}

DEFAULT_TIMEOUT = 600.0

# git keeps paths as the file system's bytes, UTF-8 or not; Python holds bytes that are not
# UTF-8 as surrogates (as os.fsdecode does), so a path read from git goes back to it unchanged
PATH_ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}

# Whether git's own progress meters reach the user (a push, a checkout): the command turns it
# on when its stderr is a terminal and it was not asked to be quiet. Such a call's stderr is
# the terminal itself, as git only draws progress there; its complaint is then on the screen.
_progress = {"shown": False}


def show_progress(on: bool) -> None:
    _progress["shown"] = on


def progress_shown() -> bool:
    return _progress["shown"]


class GitFailed(GitSlurmError):
    """A git command exited non-zero; `stderr` holds its complaint."""

    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        said = git_reason(stderr)
        super().__init__(f"git {' '.join(argv)} failed: {said or f'exit {returncode}'}")
        self.returncode = returncode
        self.stderr = stderr


def git_environment(
    extra: Optional[Mapping[str, str]] = None, *, user_environment: bool = False
) -> dict[str, str]:
    """The environment of one git call: the process's (plumbum's `local.env`, which a test
    may have changed) minus repository-local git variables, plus `extra`. Built per call and
    handed to the child, never set in this process: gc runs git from several threads."""
    env = local.env.getdict()
    if user_environment:
        return env
    for name in REPO_LOCAL_VARS:
        env.pop(name, None)
    env.update(NEVER_DOWNLOAD)
    env.update(extra or {})
    return env


def run_git(
    args: list[str],
    *,
    cwd: Optional[Path] = None,
    env: Optional[Mapping[str, str]] = None,
    stdin: Optional[str] = None,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
    user_environment: bool = False,
    shown: Optional[list[str]] = None,
    terminal: bool = False,
) -> tuple[int, str, str]:
    """Run git; return (status, stdout, stderr).

    The environment is cleaned of repository-local variables unless `user_environment`
    (only for finding the user's repository the way git itself would). `shown` is how an
    error names the command (default: all of `args`). With `terminal`, git's stderr is ours
    (for its progress) and the stderr returned is empty.
    """
    environment = git_environment(env, user_environment=user_environment)
    # Popen bound at import (as plumbum bound it): a test that fakes a failing spawn of the
    # hook's refresh (subprocess.Popen) does not fail git too
    proc = Popen(  # git is looked up on the PATH of `environment`
        ["git", *args],
        cwd=cwd or Path.cwd(),
        env=environment,
        stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=None if terminal else subprocess.PIPE,
        encoding=PATH_ENCODING["encoding"],
        errors=PATH_ENCODING["errors"],
        **OWN_GROUP,  # kill_tree ends git with everything it started
    )
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        kill_tree(proc)
        raise GitSlurmError(f"git {' '.join(shown or args)} timed out after {timeout:g}s") from exc
    except BaseException:
        kill_tree(proc)
        raise
    err = err or ""
    if check and proc.returncode != 0:
        raise GitFailed(shown or args, proc.returncode, err)
    return proc.returncode, out, err


class Git:
    """git bound to one repository (its git dir and, unless bare, its work tree)."""

    def __init__(self, git_dir: Path, work_tree: Optional[Path]) -> None:
        self.git_dir = git_dir
        self.work_tree = work_tree

    def _base(self) -> list[str]:
        base = [*NO_HOOKS, *WHOLE_INDEX, f"--git-dir={self.git_dir}"]
        if self.work_tree is not None:
            base.append(f"--work-tree={self.work_tree}")
        return base

    def run(
        self,
        *args: str,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        terminal: bool = False,
    ) -> tuple[int, str, str]:
        cwd = self.work_tree or self.git_dir
        return run_git(
            [*self._base(), *args],
            cwd=cwd,
            env=env,
            stdin=stdin,
            timeout=timeout,
            check=check,
            shown=list(args),
            terminal=terminal,
        )

    def out(self, *args: str, env: Optional[Mapping[str, str]] = None) -> str:
        """stdout of a git command that must succeed, without its final newline."""
        return self.run(*args, env=env)[1].rstrip("\n")

    def config_get_all(self, key: str) -> list[str]:
        rc, out, _ = self.run("config", "--get-all", key, check=False)
        return out.splitlines() if rc == 0 else []

    def config_bool(self, key: str) -> Optional[bool]:
        rc, out, err = self.run("config", "--type=bool", "--get", key, check=False)
        if rc == 0:
            return out.strip() == "true"
        if rc == 1:
            return None
        raise GitSlurmError(f"git config {key}: {git_reason(err)}", ExitCode.USAGE)


def git_version() -> tuple[int, ...]:
    """The installed git's version, e.g. (2, 39, 5)."""
    out = run_git(["version"])[1].split()[2]
    return tuple(int(p) for p in out.split(".")[:3] if p.isdigit())


def environ_without_git() -> dict[str, str]:
    """os.environ minus repository-local git variables (for children we don't run ourselves)."""
    return {k: v for k, v in os.environ.items() if k not in REPO_LOCAL_VARS}


def read_git_file(path: Path) -> str:
    """A file of git's admin dirs (`gitdir`, `HEAD`, `locked`, a `.git` file): paths in it may
    be any bytes."""
    return path.read_text(**PATH_ENCODING)


def write_git_file(path: Path, text: str) -> None:
    path.write_text(text, **PATH_ENCODING)


def paths_as_bytes() -> None:
    """Print a path that is not UTF-8 as its own bytes, as git does, whatever the locale says
    (Python's stdio is strict outside the C locale, and would fail after the work was done)."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="surrogateescape")
