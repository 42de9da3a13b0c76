"""How the commands talk: git's prefixes (`error:`, `warning:`, `note:`), -q/--quiet, and a
`schema` in every --json object."""

from __future__ import annotations

import re

import pytest
from gitrepo import Repo, run_tool

from git_slurm.cli.base import JSON_SCHEMA

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
