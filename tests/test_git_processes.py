"""How many git processes a snapshot of an unchanged tree starts: each costs more to start
than rev-parse's own work, so finding the checkout and HEAD takes one, and the branch prefix
is checked without any (git's rules in Python: test_refnames.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from gitrepo import Repo, run_tool

TRACED = re.compile(r"trace: built-in: git (\S+)(.*)$")


def git_commands(repo: Repo, tmp_path: Path, *args: str) -> list[tuple[str, str]]:
    """(subcommand, its arguments) of every git process the snapshot ran, from GIT_TRACE."""
    log = tmp_path / "trace.log"
    log.unlink(missing_ok=True)
    done = run_tool("slurm-snapshot", *args, cwd=repo.path, env={"GIT_TRACE": str(log)})
    assert done.returncode == 0, done.stderr
    found = (TRACED.search(line) for line in log.read_text(errors="replace").splitlines())
    return [(m.group(1), m.group(2)) for m in found if m]


def test_unchanged_tree_finds_checkout_and_head_in_one_rev_parse(
    repo: Repo, tmp_path: Path
) -> None:
    assert run_tool("slurm-snapshot", "--no-push", cwd=repo.path).returncode == 0
    ran = git_commands(repo, tmp_path, "--no-push", "--json")
    rev_parses = [rest for name, rest in ran if name == "rev-parse"]
    assert len(rev_parses) == 1, ran
    assert "--show-toplevel" in rev_parses[0] and "HEAD" in rev_parses[0]
    assert "check-ref-format" not in [name for name, _ in ran]


def test_a_subdirectory_and_a_detached_head_take_the_same_one(repo: Repo, tmp_path: Path) -> None:
    repo.git("checkout", "-q", "--detach")
    repo.write("pkg/model.py", "VERSION = 2\n")  # a new commit, whose message names HEAD
    (repo.path / "pkg").mkdir(exist_ok=True)
    done = run_tool("slurm-snapshot", "--no-push", "--json", cwd=repo.path / "pkg")
    assert done.returncode == 0, done.stderr
    made = done.json()
    subject = repo.git("log", "-1", "--format=%s", made["branch"]).strip()
    assert subject == f"git-slurm snapshot of detached HEAD at {repo.git('rev-parse', 'HEAD')[:12]}"
    ran = git_commands(repo, tmp_path, "--no-push", "--json")
    assert [name for name, _ in ran].count("rev-parse") == 1, ran


def test_unchanged_tree_loads_no_module_only_a_new_commit_or_worktree_needs(
    repo: Repo, tmp_path: Path
) -> None:
    """odb (and its pygit2) writes a commit, submodules fills a new worktree: on a reuse both
    are only import time."""
    assert run_tool("slurm-snapshot", "--no-push", cwd=repo.path).returncode == 0
    shim = Path(__file__).resolve().parent.parent / "bin" / "git-slurm-snapshot"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(shim), "--no-push", "--json"],
        cwd=repo.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["reused"]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "git_slurm.snapshot" in imported
    assert not imported & {"git_slurm.odb", "git_slurm.submodules", "pygit2"}
