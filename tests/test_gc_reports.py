"""Reports a user can act on: a reused worktree names all its launches' branches and all its
jobs; with --branches every snapshot branch gets a line, deleted or kept, with the reason."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from gitrepo import Repo, run_tool
from test_gc import age, handoff_of

from git_slurm.records import JobRef, add_jobs


def test_a_reused_worktree_names_every_launch_and_job(
    repo: Repo, sleeper: subprocess.Popen[bytes]
) -> None:
    repo.write("pkg/mod.py", "X = 1\n")
    first = repo.snapshot_json()
    worktree = Path(first["worktree"])
    jobs = [JobRef(id=str(n), kind="slurm", launch=first["branch"]) for n in (101, 102, 103)]
    add_jobs(worktree, jobs)
    second = repo.snapshot_json("--handoff", handoff_of(sleeper.pid))  # a launch, in flight
    assert second["reused"] and second["worktree"] == str(worktree)

    res = run_tool("slurm-gc", "--json", "--older-than", "0m", cwd=repo.path)
    (only,) = res.json()["worktrees"]
    assert only["branches"] == [first["branch"], second["branch"]]
    assert [(j["id"], j["launch"], j["state"]) for j in only["jobs"]] == [
        (str(n), first["branch"], "NOT_ASKED") for n in (101, 102, 103)
    ]
    assert only["detail"] == (
        f"launch {second['branch']}: its launcher (pid {sleeper.pid}) has not recorded its jobs yet"
    )
    text = run_tool("slurm-gc", "--older-than", "0m", cwd=repo.path).stdout.splitlines()
    assert text[0] == (
        f"kept {worktree} ({first['branch']}, {second['branch']}; jobs 101, 102, 103): "
        f"{only['detail']}"
    )


def test_branches_kept_and_deleted_each_get_a_line_with_the_reason(repo: Repo) -> None:
    old = repo.snapshot_json("--no-worktree")["branch"]
    # an old branch: its reflog's creation moves 30 days back
    reflog = repo.path / ".git" / "logs" / "refs" / "heads" / old
    month = 30 * 86400
    reflog.write_text(
        re.sub(r"> (\d+) ", lambda m: f"> {int(m.group(1)) - month} ", reflog.read_text())
    )
    repo.write("pkg/mod.py", "X = 2\n")
    young = repo.snapshot_json()
    age(Path(young["worktree"]), 0)

    res = run_tool("slurm-gc", "--older-than", "7d", "--branches", "--dry-run", cwd=repo.path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert f"would delete branch {old}: created 30d ago, used by no kept worktree" in lines
    assert any(line.startswith(f"would keep branch {young['branch']}: ") for line in lines), lines
