"""What counts as a job's data for `git slurm-gc`: files written into a submodule directory the
snapshot left empty do; caches a job regenerates from the code (bytecode, tool caches) don't."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gitrepo import Repo, run_tool
from silentserver import SilentServer
from test_gc import age
from test_submodules import project as submodule_project

from git_slurm.gc import regenerable

BYTECODE_OFF = ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")


def gc(repo: Repo, *args: str) -> dict[str, Any]:
    res = run_tool("slurm-gc", "--json", "--older-than", "0m", *args, cwd=repo.path)
    assert res.returncode == 0, res.stderr
    (only,) = res.json()["worktrees"]
    return dict(only)


@pytest.fixture
def project(tmp_path: Path, silent_server: SilentServer) -> Repo:
    made: Repo = submodule_project.__wrapped__(tmp_path, silent_server)  # type: ignore[attr-defined]
    return made


@pytest.mark.parametrize("where", ["lib/results.csv", "lib/deep/er/model.ckpt", "lib/.hidden"])
def test_files_in_an_empty_submodule_directory_are_job_data(project: Repo, where: str) -> None:
    """Without --submodules the snapshot leaves `lib/` empty and git looks into it no more: a
    job that writes there must keep the worktree (until --force)."""
    data = run_tool("slurm-snapshot", "--json", "--no-push", cwd=project.path).json()
    worktree = Path(data["worktree"])
    assert not any((worktree / "lib").iterdir())
    age(worktree, 3600)
    (worktree / where).parent.mkdir(parents=True, exist_ok=True)
    (worktree / where).write_text("job output\n")

    kept = gc(project)
    assert (kept["action"], kept["reason"], kept["job_files"]) == ("kept", "job-files", [where])
    assert (worktree / where).read_text() == "job output\n"
    assert gc(project, "--force")["action"] == "removed" and not worktree.exists()


def test_bytecode_and_tool_caches_do_not_keep_a_worktree(repo: Repo) -> None:
    """A Python job leaves `__pycache__/` behind (here: for real, by importing the code), and
    pytest its `.pytest_cache/`: neither is data, the worktree goes without --force."""
    repo.write("pkg/__init__.py", "")
    repo.write("pkg/mod.py", "X = 1\n")
    worktree = Path(repo.snapshot_json()["worktree"])
    age(worktree, 3600)
    env = {k: v for k, v in os.environ.items() if k not in BYTECODE_OFF}
    subprocess.run([sys.executable, "-c", "import pkg.mod"], cwd=worktree, env=env, check=True)
    assert list((worktree / "pkg" / "__pycache__").glob("*.pyc"))
    (worktree / ".pytest_cache" / "v" / "cache").mkdir(parents=True)
    (worktree / ".pytest_cache" / "v" / "cache" / "lastfailed").write_text("{}\n")

    removed = gc(repo)
    assert (removed["action"], removed["job_files"]) == ("removed", [])
    assert not worktree.exists()


def test_a_job_file_next_to_caches_still_keeps_it(repo: Repo) -> None:
    worktree = Path(repo.snapshot_json()["worktree"])
    age(worktree, 3600)
    (worktree / "__pycache__").mkdir()
    (worktree / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    (worktree / "__pycache__" / "notes.txt").write_text("not bytecode\n")
    kept = gc(repo)
    assert (kept["reason"], kept["job_files"]) == ("job-files", ["__pycache__/notes.txt"])


@pytest.mark.parametrize(
    ("rel", "cache"),
    [
        ("pkg/__pycache__/mod.cpython-311.pyc", True),
        ("mod.pyc", True),
        (".pytest_cache/v/cache/nodeids", True),
        ("sub/.mypy_cache/3.11/x.json", True),
        (".ruff_cache/", True),
        ("__pycache__/notes.txt", False),
        ("pyc", False),
        ("results/__pycache__.csv", False),
        (".ipynb_checkpoints/nb-checkpoint.ipynb", False),
    ],
)
def test_regenerable(rel: str, cache: bool) -> None:
    assert regenerable(rel) is cache
