"""The reminder hook against what users and other tools do to a hooks directory: two installs
at once, pre-commit overwriting our hook (`pre-commit install --overwrite`).
Real git, real pre-commit, the installed executables."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from gitrepo import Repo, run_tool
from test_hook_install import LFS_LIKE_HOOK, hooks_state, install, uninstall, write_hook
from test_hook_precommit import FOREIGN_SAYS, OURS_SAYS, PRE_COMMIT_CONFIG, who_ran

from git_slurm import hookinstall
from git_slurm.faults import ENV as FAULT

SNAPSHOT = str(Path(sys.executable).parent / "git-slurm-snapshot")


def pre_commit(repo: Repo, *argv: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", *argv, "--hook-type", "post-checkout"],
        cwd=repo.path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def stopped_at(repo: Repo, switch: str, step: str) -> subprocess.Popen[str]:
    """`git slurm-snapshot <switch>` started and stopped by its own SIGSTOP at `step`."""
    proc = subprocess.Popen(
        [SNAPSHOT, switch],
        cwd=repo.path,
        env={**os.environ, FAULT: f"{step}:STOP"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), f"{switch} did not reach {step}"
    return proc


def test_two_installs_at_once_never_lose_the_users_hook(repo: Repo) -> None:
    """The first install stops (SIGSTOP, a real signal) between looking for a chained hook and
    moving the user's hook there; a second install runs whole meanwhile. The first must not
    then move the second's shim over the user's hook."""
    branch = repo.snapshot_json("--no-worktree", "--no-push")["branch"]
    write_hook(repo, LFS_LIKE_HOOK)
    first = stopped_at(repo, "--install-hooks", "hook-move")
    install(repo)  # the second, whole
    os.kill(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=60)
    hooks = repo.path / ".git" / "hooks"
    assert (hooks / hookinstall.CHAINED_NAME).read_text() == LFS_LIKE_HOOK
    assert first.returncode in (0, 2), err
    assert who_ran(repo, branch) == [FOREIGN_SAYS, OURS_SAYS]
    uninstall(repo)
    assert (hooks / "post-checkout").read_text() == LFS_LIKE_HOOK


def test_pre_commit_overwriting_our_hook_strands_no_hook_of_the_user(repo: Repo) -> None:
    """`pre-commit install --overwrite` deletes the hook it would chain -- ours, which runs the
    user's. Uninstalling says where the user's hook is, and puts it back once the slot is
    free again; installing again names the way out."""
    repo.write(".pre-commit-config.yaml", PRE_COMMIT_CONFIG)
    repo.commit("pre-commit config")
    write_hook(repo, LFS_LIKE_HOOK)
    hooks = repo.path / ".git" / "hooks"
    before = hooks_state(hooks)
    install(repo)
    pre_commit(repo, "install", "--overwrite")
    said = uninstall(repo)
    assert f"{hooks / hookinstall.CHAINED_NAME}" in said and "not run" in said, said
    refused = run_tool("slurm-snapshot", "--install-hooks", cwd=repo.path)
    assert refused.returncode == 2 and "--uninstall-hooks" in refused.stderr, refused.stderr
    pre_commit(repo, "uninstall")
    assert "restored your previous hook" in uninstall(repo)
    assert hooks_state(hooks) == before


def test_json_with_a_hook_switch_is_refused_not_answered_in_prose(repo: Repo) -> None:
    """`--json` promises exactly one JSON object; the hook switches print a sentence."""
    hooks = repo.path / ".git" / "hooks"
    before = hooks_state(hooks)
    for switch in ("--install-hooks", "--uninstall-hooks"):
        res = run_tool("slurm-snapshot", switch, "--json", cwd=repo.path)
        assert res.returncode == 2 and res.stdout == "", res.stdout
        assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert hooks_state(hooks) == before


def test_two_uninstalls_at_once_never_delete_the_restored_hook(repo: Repo) -> None:
    """The first uninstall stops (SIGSTOP) once it has found our hook; a second uninstall
    runs whole meanwhile and puts the user's hook back. The first must not then delete it."""
    write_hook(repo, LFS_LIKE_HOOK)
    install(repo)
    first = stopped_at(repo, "--uninstall-hooks", "hook-remove")
    assert "restored your previous hook" in uninstall(repo)  # the second, whole
    os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert (repo.path / ".git" / "hooks" / "post-checkout").read_text() == LFS_LIKE_HOOK, out
