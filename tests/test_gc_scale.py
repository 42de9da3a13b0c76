"""gc at scale (issue 12.8) without losing exactness: a dry run looks at every due worktree at
once (git status in several processes), disk use is counted per inode rather than per name,
and a submodule listing is skipped when the index cannot hold one. None of it may miss a
job-written file or change a number the report gave before."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from gitrepo import Repo, run_tool
from plumbum import local
from test_gc import age, snapshot

from git_slurm.diskusage import Scan, Usage, freeable, freed
from git_slurm.gc import index_may_hold_gitlinks
from git_slurm.gitcli import run_git
from git_slurm.records import admin_dir_of

HOUR = 3600.0


def gc(repo: Repo, *args: str) -> dict[str, Any]:
    res = run_tool("slurm-gc", "--json", "--older-than", "1m", *args, cwd=repo.path)
    assert res.returncode == 0, res.stderr
    data: dict[str, Any] = res.json()
    return data


def outcomes(report: dict[str, Any]) -> dict[str, tuple[str, str, list[str]]]:
    return {w["path"]: (w["action"], w["reason"], w["job_files"]) for w in report["worktrees"]}


def rewrite_in_place(path: Path) -> None:
    """What a job may do to a tracked file: the same number of bytes written into the same
    inode, right after the snapshot was made (often in the second its index was written)."""
    before = path.lstat()
    text = path.read_bytes()
    path.chmod(0o644)  # snapshot files are read-only (root would not need this)
    with path.open("r+b") as f:
        f.write(text.swapcase())
    path.chmod(stat.S_IMODE(before.st_mode))
    assert path.lstat().st_size == before.st_size and path.lstat().st_ino == before.st_ino


def deep_new_file(worktree: Path) -> str:
    rel = "new/a/b/c/d/e/result.csv"
    (worktree / rel).parent.mkdir(parents=True)
    (worktree / rel).write_text("1,2\n")
    return rel


def ignored_file(worktree: Path) -> str:
    rel = "wandb/run-1/files/output.log"  # .gitignore: wandb/
    (worktree / rel).parent.mkdir(parents=True)
    (worktree / rel).write_text("loss 0.1\n")
    return rel


@pytest.fixture
def repo_with_data_rules(repo: Repo) -> Repo:
    repo.write(".gitignore", "wandb/\n")
    repo.write("conf/model.yaml", "lr: 0.1\nlayers: 4\n")
    repo.commit("code")
    return repo


def test_the_dry_run_finds_every_kind_of_job_data_that_the_removal_finds(
    repo_with_data_rules: Repo,
) -> None:
    """Several due worktrees, so the dry run's git statuses run side by side: an in-place
    rewrite of a tracked file (same size, mtime set back), a file in a new deep directory, a
    file in an ignored directory, each kept with that very file; the clean one goes."""
    repo = repo_with_data_rules
    first, second, third, clean = (snapshot(repo) for _ in range(4))  # later ones: hard links
    rewrite_in_place(second / "pkg" / "stamp.py")  # each snapshot's own file (snapshot())
    expected_files = {
        first: [deep_new_file(first)],
        second: ["pkg/stamp.py"],
        third: [ignored_file(third)],
        clean: [],
    }
    for worktree in expected_files:
        age(worktree, HOUR)

    dry = gc(repo, "-n")
    real = gc(repo)
    assert (
        outcomes(dry)
        == outcomes(real)
        == {
            str(w): ("kept", "job-files", files) if files else ("removed", "unused", [])
            for w, files in expected_files.items()
        }
    )
    assert dry["freed_bytes"] == real["freed_bytes"] > 0
    assert not clean.exists() and (third / expected_files[third][0]).read_text() == "loss 0.1\n"


def test_a_rewrite_of_a_hard_linked_file_keeps_every_worktree_that_holds_it(
    repo_with_data_rules: Repo,
) -> None:
    """Snapshots share the inode of an unchanged file: what a job wrote into it in one is in
    all of them, and each is kept for it."""
    repo = repo_with_data_rules
    one, two = snapshot(repo), snapshot(repo)
    assert (one / "conf" / "model.yaml").stat().st_ino == (
        two / "conf" / "model.yaml"
    ).stat().st_ino
    rewrite_in_place(two / "conf" / "model.yaml")
    for worktree in (one, two):
        age(worktree, HOUR)
    expected = {str(w): ("kept", "job-files", ["conf/model.yaml"]) for w in (one, two)}
    assert outcomes(gc(repo, "-n")) == outcomes(gc(repo)) == expected


def test_a_worktree_git_cannot_inspect_is_kept_in_the_dry_run_too(repo: Repo) -> None:
    broken, fine = snapshot(repo), snapshot(repo)
    for worktree in (broken, fine):
        age(worktree, HOUR)
    admin = admin_dir_of(broken)
    assert admin is not None
    (admin / "index").write_bytes(b"DIRC not an index")  # git status fails there
    dry, real = gc(repo, "-n"), gc(repo)
    assert outcomes(dry) == outcomes(real)
    assert outcomes(real)[str(broken)][:2] == ("kept", "failed")
    assert outcomes(real)[str(fine)][:2] == ("removed", "unused")


def reference_usage(root: Path) -> tuple[int, dict[tuple[int, int], int]]:
    """(own bytes, {inode: links here}) from an lstat of every name, as du walks."""
    own, shared = 0, dict[tuple[int, int], int]()
    for top, dirs, files in os.walk(root):
        for name in [*dirs, *files, ""] if top == str(root) else [*dirs, *files]:
            info = os.lstat(os.path.join(top, name)) if name else os.lstat(top)
            if info.st_nlink > 1 and stat.S_ISREG(info.st_mode):
                key = (info.st_dev, info.st_ino)
                shared[key] = shared.get(key, 0) + 1
            else:
                own += info.st_blocks * 512
    return own, shared


def test_a_scan_counts_what_an_lstat_of_every_name_counts(tmp_path: Path) -> None:
    """Trees sharing files through hard links (twice within one tree as well), a hard-linked
    symlink, a file linked from outside all of them: each inode stat'ed once gives the
    numbers of a walk that stats every name."""
    trees = [tmp_path / f"t{n}" for n in range(3)]
    outside = tmp_path / "outside"
    outside.mkdir()
    for tree in trees:
        (tree / "d" / "e").mkdir(parents=True)
    (trees[0] / "d" / "big").write_bytes(os.urandom(100_000))
    (trees[0] / "own").write_bytes(os.urandom(10_000))
    (trees[0] / "link").symlink_to("own")
    os.link(trees[0] / "d" / "big", trees[0] / "d" / "e" / "again")
    for tree in trees[1:]:
        os.link(trees[0] / "d" / "big", tree / "d" / "big")
        os.link(trees[0] / "link", tree / "link", follow_symlinks=False)
    (trees[2] / "d" / "e" / "lone").write_bytes(os.urandom(5_000))
    os.link(trees[2] / "d" / "e" / "lone", outside / "lone")

    scan = Scan()
    usages = [scan.usage(tree) for tree in trees]
    for tree, usage in zip(trees, usages, strict=True):
        own, shared = reference_usage(tree)
        assert usage.bytes == own
        assert usage.shared_files == len(shared)
        assert len(usage.links) == sum(shared.values())
        assert freeable(tree).bytes == own
    big = (trees[0] / "d" / "big").lstat().st_blocks * 512
    assert freed(usages) == (sum(u.bytes for u in usages) + big, 1)  # lone stays: outside
    assert freed(usages[1:]) == (usages[1].bytes + usages[2].bytes, 2)
    assert usages[0].fair_share == usages[0].bytes + big * 2 // 4


def test_an_empty_usage_frees_nothing() -> None:
    assert freed([]) == (0, 0) and freed([Usage()]) == (0, 0)


def test_the_index_shows_when_it_holds_no_submodule(repo: Repo, tmp_path: Path) -> None:
    worktree = snapshot(repo)
    admin = admin_dir_of(worktree)
    assert admin is not None
    assert index_may_hold_gitlinks(admin) is False
    assert index_may_hold_gitlinks(tmp_path) is False  # no index at all: no entry
    sub = tmp_path / "sub"
    sub.mkdir()
    run_git(["init", "-q", str(sub)])
    run_git(["-C", str(sub), "commit", "-q", "--allow-empty", "-m", "x"])
    head = run_git(["-C", str(sub), "rev-parse", "HEAD"])[1].strip()
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{head},lib")
    assert index_may_hold_gitlinks(repo.path / ".git") is True


def test_git_calls_from_threads_each_get_their_own_environment(repo: Repo) -> None:
    """gc runs git from several threads: each call's environment is its own (it was set in
    this process for the duration of each call, so concurrent calls saw each other's)."""
    failures: list[str] = []

    def ask(n: int) -> None:
        for _ in range(15):
            env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "x.n", "GIT_CONFIG_VALUE_0": str(n)}
            out = run_git(["config", "--get", "x.n"], cwd=repo.path, env=env)[1].strip()
            if out != str(n):
                failures.append(f"thread {n} saw {out}")

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    # each call's variables went with it (they were left behind: a thread that entered while
    # another was inside restored the other's environment on leaving)
    assert "GIT_CONFIG_COUNT" not in local.env
    assert run_git(["config", "--get", "x.n"], cwd=repo.path, check=False)[0] == 1


def test_freed_follows_the_links_left_after_a_source_went(repo: Repo) -> None:
    """A snapshot hard-linked from one that gc removed since holds the shared data alone now:
    link counts are read when gc runs, so its removal frees it, exactly."""
    repo.write("big.bin", "x" * (1 << 20))
    repo.commit("a big file")
    first, second = snapshot(repo), snapshot(repo)
    assert (first / "big.bin").stat().st_ino == (second / "big.bin").stat().st_ino
    age(first, 30 * 24 * HOUR)
    report = gc(repo)
    assert outcomes(report)[str(first)][:2] == ("removed", "unused")
    assert report["freed_bytes"] < 1 << 20 and report["freed_is_lower_bound"] is True
    age(second, 30 * 24 * HOUR)
    report = gc(repo)
    assert outcomes(report)[str(second)][:2] == ("removed", "unused")
    assert report["freed_bytes"] >= 1 << 20 and report["freed_is_lower_bound"] is False
