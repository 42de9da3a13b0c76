"""How the commands talk: git's prefixes (`error:`, `warning:`, `note:`), -q/--quiet, and a
`schema` in every --json object."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from gitrepo import Repo, run_tool
from terminal import on_a_terminal

from git_slurm.cli.base import JSON_SCHEMA

NO_DELAY = {"GIT_PROGRESS_DELAY": "0"}  # git draws its progress at once, not after 2 s
PREFIXED = re.compile(r"^(error|warning|note): \S")


@pytest.mark.parametrize(
    "argv", [["slurm-snapshot", "--json", "--no-push"], ["slurm-gc", "--json", "--dry-run"]]
)
def test_every_json_object_says_its_schema_first(repo: Repo, argv: list[str]) -> None:
    res = run_tool(*argv, cwd=repo.path)
    assert res.returncode == 0, res.stderr
    data = res.json()
    assert next(iter(data)) == "schema" and data["schema"] == JSON_SCHEMA == 1


def test_notes_and_warnings_carry_git_s_prefixes(repo: Repo) -> None:
    """A merge in progress is a note; a default push that fails is a warning."""
    repo.git("remote", "add", "origin", str(repo.path / "no-such-remote"))
    (repo.path / ".git" / "MERGE_HEAD").write_text(repo.git("rev-parse", "HEAD"))
    res = run_tool("slurm-snapshot", cwd=repo.path)
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert lines and all(PREFIXED.match(line) for line in lines), lines
    assert any(ln.startswith("note: the repository is in the middle of a merge") for ln in lines)
    assert any(ln.startswith("warning: push of slurm-job-") for ln in lines)


def test_quiet_says_only_warnings(repo: Repo) -> None:
    repo.git("remote", "add", "origin", str(repo.path / "no-such-remote"))
    (repo.path / ".git" / "MERGE_HEAD").write_text(repo.git("rev-parse", "HEAD"))
    for quiet in ("-q", "--quiet"):
        res = run_tool("slurm-snapshot", quiet, cwd=repo.path)
        assert res.returncode == 0, res.stderr
        assert res.stdout == ""
        assert [ln.split(":")[0] for ln in res.stderr.splitlines()] == ["warning"]
    gc = run_tool("slurm-gc", "-q", "--older-than", "0m", cwd=repo.path)
    assert gc.returncode == 0 and gc.stdout == "" and gc.stderr == "", gc
    loud = run_tool("slurm-gc", "--older-than", "0m", cwd=repo.path)
    assert loud.stdout != ""


def test_quiet_keeps_the_json_object(repo: Repo) -> None:
    res = run_tool("slurm-snapshot", "-q", "--json", "--no-push", cwd=repo.path)
    assert res.returncode == 0 and res.json()["branch"].startswith("slurm-job-")


@pytest.fixture
def pushing_repo(repo: Repo, tmp_path: Path) -> Repo:
    for n in range(200):
        repo.write(f"data/file{n}.txt", f"{n}\n")
    repo.commit("many files")
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "remote.git")], check=True)
    repo.git("remote", "add", "origin", str(tmp_path / "remote.git"))
    return repo


def test_on_a_terminal_git_s_own_progress_shows(pushing_repo: Repo) -> None:
    pushing_repo.write("pkg/model.py", "VERSION = 2\n")
    rc, out, shown = on_a_terminal(["git", "slurm-snapshot"], pushing_repo.path, NO_DELAY)
    assert rc == 0, shown
    assert "Updating files: 100% (" in shown  # the worktree's checkout
    assert "Writing objects: 100% (" in shown  # the push
    assert out  # the summary still on stdout


def test_quiet_or_piped_no_progress(pushing_repo: Repo) -> None:
    pushing_repo.write("pkg/model.py", "VERSION = 3\n")
    rc, _, shown = on_a_terminal(["git", "slurm-snapshot", "-q"], pushing_repo.path, NO_DELAY)
    assert rc == 0 and shown == "", shown
    pushing_repo.write("pkg/model.py", "VERSION = 4\n")
    piped = run_tool("slurm-snapshot", cwd=pushing_repo.path, env={"GIT_PROGRESS_DELAY": "0"})
    assert piped.returncode == 0 and "Updating files" not in piped.stderr, piped.stderr


def test_a_url_with_credentials_never_reaches_the_terminal(pushing_repo: Repo) -> None:
    pushing_repo.git("remote", "set-url", "origin", "https://user:s3cret@127.0.0.1:9/x.git")
    pushing_repo.write("pkg/model.py", "VERSION = 5\n")
    rc, _, shown = on_a_terminal(["git", "slurm-snapshot"], pushing_repo.path, NO_DELAY)
    assert rc == 0 and "warning: push of " in shown, shown
    assert "s3cret" not in shown
