"""The reminder hook and the pre-commit framework's own post-checkout hook, in either order.

pre-commit itself is installed (the test extra) and installs its real hook script: it runs
`post-checkout.legacy` first ("migration mode") and moves a foreign hook to that name.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from gitrepo import Repo, run_tool
from test_hook_install import LFS_LIKE_HOOK, hooks_state, write_hook

from git_slurm import hookinstall

PRE_COMMIT_CONFIG = """\
repos:
  - repo: local
    hooks:
      - id: hello
        name: hello
        entry: echo the pre-commit framework hook ran
        language: system
        stages: [post-checkout]
        always_run: true
        pass_filenames: false
        verbose: true
"""
PRE_COMMIT_SAYS = "the pre-commit framework hook ran"
FOREIGN_SAYS = "foreign hook ran"
OURS_SAYS = "is a snapshot branch"


def pre_commit(repo: Repo, verb: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", verb, "--hook-type", "post-checkout"],
        cwd=repo.path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def git_slurm(repo: Repo, switch: str) -> str:
    res = run_tool("slurm-snapshot", switch, cwd=repo.path)
    assert res.returncode == 0, res.stderr
    return res.stdout


def who_ran(repo: Repo, branch: str) -> list[str]:
    """Switch to `branch` and back; which hooks spoke on the way there (each must exit 0)."""
    said = []
    for target in (branch, "-"):
        done = subprocess.run(
            ["git", "switch", target], cwd=repo.path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        said.append(done.stderr)
    spoke = [who for who in (FOREIGN_SAYS, PRE_COMMIT_SAYS, OURS_SAYS) if who in said[0]]
    assert all(said[0].count(who) == 1 for who in spoke), said[0]
    return sorted(spoke, key=said[0].index)


@pytest.fixture
def framework_repo(repo: Repo) -> Repo:
    repo.write(".pre-commit-config.yaml", PRE_COMMIT_CONFIG)
    repo.commit("pre-commit config")
    return repo


@pytest.mark.parametrize("foreign", [False, True], ids=["alone", "with-a-foreign-hook"])
@pytest.mark.parametrize("first", ["pre-commit", "git-slurm"])
@pytest.mark.parametrize("uninstall_first", ["pre-commit", "git-slurm"])
def test_both_hooks_run_and_each_uninstalls_cleanly(
    framework_repo: Repo, foreign: bool, first: str, uninstall_first: str
) -> None:
    repo = framework_repo
    branch = repo.snapshot_json("--no-worktree", "--no-push")["branch"]
    hooks = repo.path / ".git" / "hooks"
    if foreign:
        write_hook(repo, LFS_LIKE_HOOK)
    before = hooks_state(hooks)
    alone = [FOREIGN_SAYS] if foreign else []

    if first == "pre-commit":
        pre_commit(repo, "install")
        assert "installed" in git_slurm(repo, "--install-hooks")
    else:
        git_slurm(repo, "--install-hooks")
        pre_commit(repo, "install")
    assert who_ran(repo, branch) == [*alone, OURS_SAYS, PRE_COMMIT_SAYS]
    assert "already installed" in git_slurm(repo, "--install-hooks")  # found under pre-commit

    if uninstall_first == "git-slurm":
        assert "removed" in git_slurm(repo, "--uninstall-hooks")
        assert who_ran(repo, branch) == [*alone, PRE_COMMIT_SAYS]
        pre_commit(repo, "uninstall")
    else:
        pre_commit(repo, "uninstall")
        assert who_ran(repo, branch) == [*alone, OURS_SAYS]
        assert "removed" in git_slurm(repo, "--uninstall-hooks")
    assert who_ran(repo, branch) == alone
    assert hooks_state(hooks) == before


def test_installing_under_pre_commit_takes_its_chain_slot(framework_repo: Repo) -> None:
    """pre-commit's script chained by ours would run itself as its own legacy hook: exit 1."""
    pre_commit(framework_repo, "install")
    said = git_slurm(framework_repo, "--install-hooks")
    hooks = framework_repo.path / ".git" / "hooks"
    assert "pre-commit's post-checkout hook runs it as its post-checkout.legacy" in said
    assert hookinstall.is_ours(hooks / "post-checkout.legacy")
    assert hookinstall.is_pre_commit_script(hooks / "post-checkout")


def test_a_hook_installed_by_an_older_git_slurm_is_migrated(repo: Repo) -> None:
    """Before, the shim chained post-checkout.legacy: updating or uninstalling keeps that hook."""
    hooks = repo.path / ".git" / "hooks"
    write_hook(repo, LFS_LIKE_HOOK)
    before = hooks_state(hooks)
    git_slurm(repo, "--install-hooks")
    ours = hooks / "post-checkout"
    old_shim = ours.read_text().replace(hookinstall.CHAINED_NAME, "post-checkout.legacy")
    ours.write_text(old_shim)
    (hooks / hookinstall.CHAINED_NAME).rename(hooks / "post-checkout.legacy")

    assert git_slurm(repo, "--install-hooks").startswith("updated")
    assert (hooks / hookinstall.CHAINED_NAME).read_text() == LFS_LIKE_HOOK
    ours.write_text(old_shim)
    (hooks / hookinstall.CHAINED_NAME).rename(hooks / "post-checkout.legacy")
    git_slurm(repo, "--uninstall-hooks")
    assert hooks_state(hooks) == before


def test_the_framework_s_entry_point_is_not_a_git_command(repo: Repo) -> None:
    """`git help -a` lists every git-* on PATH as a command; the hook's entry point is none."""
    listed = subprocess.run(
        ["git", "help", "-a"], cwd=repo.path, capture_output=True, text=True, check=True
    ).stdout
    assert "slurm-snapshot" in listed and "slurm-gc" in listed
    assert "slurm-post-checkout" not in listed
    assert shutil.which("git_slurm_post_checkout")  # the framework's entry point still exists
