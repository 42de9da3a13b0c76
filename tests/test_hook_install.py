"""`git slurm-snapshot --install-hooks / --uninstall-hooks` on real repositories."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Union

import pytest
from gitrepo import ROOT, Repo, run_tool
from needs import MountTmpfs, unavailable

from git_slurm import hookinstall, reminders
from git_slurm.repo import discover

LFS_LIKE_HOOK = "#!/bin/sh\n# a foreign hook, like git-lfs's\necho foreign hook ran\n"

Entry = tuple[str, Union[str, bytes], int, int]


def hooks_state(hooks: Path) -> dict[str, Entry]:
    """name -> (kind, content or link target, mode, mtime_ns) of everything in hooks/."""
    state: dict[str, Entry] = {}
    for p in sorted(hooks.iterdir()):
        st = p.lstat()
        if p.is_symlink():
            state[p.name] = ("link", os.readlink(p), st.st_mode, st.st_mtime_ns)
        else:
            state[p.name] = ("file", p.read_bytes(), st.st_mode, st.st_mtime_ns)
    return state


def install(repo: Repo, cwd: Path | None = None) -> str:
    res = run_tool("slurm-snapshot", "--install-hooks", cwd=cwd or repo.path)
    assert res.returncode == 0, res.stderr
    return res.stdout


def uninstall(repo: Repo) -> str:
    res = run_tool("slurm-snapshot", "--uninstall-hooks", cwd=repo.path)
    assert res.returncode == 0, res.stderr
    return res.stdout


def write_hook(repo: Repo, text: str, name: str = "post-checkout") -> Path:
    hook = repo.path / ".git" / "hooks" / name
    hook.write_text(text)
    hook.chmod(0o755)
    return hook


@pytest.mark.parametrize("before", ["none", "script", "symlink", "not-executable"])
def test_install_then_uninstall_leaves_hooks_byte_identical(repo: Repo, before: str) -> None:
    """Whatever was there (nothing, a script, a symlink, a disabled hook) comes back exactly."""
    if before == "script":
        write_hook(repo, LFS_LIKE_HOOK)
    elif before == "symlink":
        shared = write_hook(repo, LFS_LIKE_HOOK, "shared-hook")
        (shared.parent / "post-checkout").symlink_to("shared-hook")
    elif before == "not-executable":
        write_hook(repo, LFS_LIKE_HOOK).chmod(0o644)
    hooks = repo.path / ".git" / "hooks"
    snapshot = hooks_state(hooks)
    install(repo)
    assert hookinstall.is_ours(hooks / "post-checkout")
    assert os.path.lexists(hooks / hookinstall.CHAINED_NAME) == (before != "none")
    uninstall(repo)
    assert hooks_state(hooks) == snapshot


def test_a_failed_install_puts_the_users_hook_back(repo: Repo, mount_tmpfs: MountTmpfs) -> None:
    """The user's hook is moved aside before git-slurm's is written: when that write fails
    (a full disk), the user's hook is put back and nothing of ours is left."""
    hooks = repo.path / ".git" / "hooks"
    shutil.rmtree(hooks)
    mount_tmpfs(hooks, "64k")
    write_hook(repo, LFS_LIKE_HOOK)
    filling = (hooks / "filler").open("wb", buffering=0)
    with filling as filler, contextlib.suppress(OSError):  # until the file system is full
        while True:
            filler.write(b"x" * 4096)
    before = hooks_state(hooks)

    res = run_tool("slurm-snapshot", "--install-hooks", cwd=repo.path)

    assert res.returncode == 1, res.stdout
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert "No space left on device" in res.stderr
    assert hooks_state(hooks) == before


def test_uninstall_also_removes_the_reminder_s_cache(repo: Repo) -> None:
    install(repo)
    repo.write("pkg/model.py", "VERSION = 2\n")
    assert repo.snapshot("--no-push").returncode == 0
    common = repo.path / ".git"
    reminders.refresh_cache(common, time.time())  # every worktree is old: its size is cached
    assert (common / reminders.CACHE_NAME).exists()
    uninstall(repo)
    assert not (common / reminders.CACHE_NAME).exists()
    assert not (common / reminders.REFRESH_LOCK_NAME).exists()


def test_installed_hook_is_the_shim_with_this_python(repo: Repo) -> None:
    install(repo)
    hook = repo.path / ".git" / "hooks" / "post-checkout"
    text = hook.read_text()
    assert text.splitlines()[1].startswith("# git-slurm-hook")
    assert "python=/" in text and "@PYTHON@" not in text and "@ROOT@" not in text
    assert hook.stat().st_mode & stat.S_IXUSR
    lint = subprocess.run(["sh", "-n", str(hook)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stderr


def test_install_is_idempotent_and_never_chains_itself(repo: Repo) -> None:
    write_hook(repo, LFS_LIKE_HOOK)
    first = install(repo)
    assert f"kept as {hookinstall.CHAINED_NAME}" in first
    hooks = repo.path / ".git" / "hooks"
    after_first = hooks_state(hooks)
    assert "already installed" in install(repo)
    assert hooks_state(hooks) == after_first
    assert (hooks / hookinstall.CHAINED_NAME).read_text() == LFS_LIKE_HOOK


def test_install_updates_a_hook_with_another_python(repo: Repo) -> None:
    checkout = discover(repo.path)
    hookinstall.install(checkout, python="/old/venv/bin/python")
    said = hookinstall.install(checkout)
    assert said.startswith("updated")
    hook = repo.path / ".git" / "hooks" / "post-checkout"
    assert "/old/venv" not in hook.read_text()
    assert not (hook.parent / hookinstall.CHAINED_NAME).exists()


def test_uninstall_without_our_hook_changes_nothing(repo: Repo) -> None:
    write_hook(repo, LFS_LIKE_HOOK)
    hooks = repo.path / ".git" / "hooks"
    before = hooks_state(hooks)
    assert "nothing to do" in uninstall(repo)
    assert hooks_state(hooks) == before


def test_install_refuses_when_core_hooks_path_points_elsewhere(repo: Repo) -> None:
    repo.git("config", "core.hooksPath", "team-hooks")
    hooks = repo.path / ".git" / "hooks"
    before = hooks_state(hooks)
    res = run_tool("slurm-snapshot", "--install-hooks", cwd=repo.path)
    assert res.returncode == 2
    assert res.stderr.startswith("error: core.hooksPath sends git to ")
    assert "team-hooks" in res.stderr and len(res.stderr.splitlines()) == 1
    assert hooks_state(hooks) == before
    assert not (repo.path / "team-hooks").exists()


def test_install_accepts_core_hooks_path_naming_the_default_dir(repo: Repo) -> None:
    repo.git("config", "core.hooksPath", ".git/hooks")
    install(repo)
    assert hookinstall.is_ours(repo.path / ".git" / "hooks" / "post-checkout")


def test_install_refuses_to_overwrite_an_orphan_chained_hook(repo: Repo) -> None:
    write_hook(repo, LFS_LIKE_HOOK)
    write_hook(repo, "#!/bin/sh\necho older\n", hookinstall.CHAINED_NAME)
    hooks = repo.path / ".git" / "hooks"
    before = hooks_state(hooks)
    res = run_tool("slurm-snapshot", "--install-hooks", cwd=repo.path)
    assert res.returncode == 2 and f"{hookinstall.CHAINED_NAME} exists" in res.stderr
    assert hooks_state(hooks) == before


def test_install_from_a_linked_worktree_goes_to_the_common_dir(repo: Repo, tmp_path: Path) -> None:
    linked = tmp_path / "linked"
    repo.git("worktree", "add", "-q", "-b", "side", str(linked))
    install(repo, cwd=linked)
    assert hookinstall.is_ours(repo.path / ".git" / "hooks" / "post-checkout")
    assert not (repo.path / ".git" / "worktrees" / "linked" / "hooks").exists()


def test_the_shim_in_the_repository_is_what_gets_installed() -> None:
    """hooks/post-checkout is the one source: marked, POSIX sh, running hookinstall.BOOT."""
    shim = (ROOT / "hooks" / "post-checkout").read_text()
    assert hookinstall.BOOT in shim
    assert shim.count("@PYTHON@") == 1 and shim.count("@ROOT@") == 1
    assert hookinstall.MARKER.decode() in shim.splitlines()[1]
    assert subprocess.run(["sh", "-n", str(ROOT / "hooks" / "post-checkout")]).returncode == 0


def test_the_shim_passes_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        unavailable("shellcheck is not installed (Debian: apt-get install shellcheck)")
    done = subprocess.run(
        ["shellcheck", "--shell=sh", str(ROOT / "hooks" / "post-checkout")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout
