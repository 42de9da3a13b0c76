"""The one-walk capture (`git status` + `git update-index` of exactly the changed paths) stages
the very tree `git add -A` would, in the states where the two could plausibly differ."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from gitrepo import Repo, git, user_state

from git_slurm.capture import parse_status


def add_all_tree(repo: Repo, tmp_path: Path) -> str:
    """`git add -A` + `git write-tree` in a copy of the repository (the definition)."""
    copy = tmp_path / "copy"
    shutil.copytree(repo.path, copy, symlinks=True)
    git(copy, "add", "-A")
    return git(copy, "write-tree").strip()


def intent_to_add(repo: Repo) -> None:
    repo.write("planned.py", "p = 1\n")
    repo.git("add", "-N", "planned.py")
    repo.write("planned.py", "p = 2\n")


def file_becomes_directory(repo: Repo) -> None:
    (repo.path / "README.md").unlink()
    repo.write("README.md/inside.txt", "now a directory\n")


def directory_becomes_file(repo: Repo) -> None:
    shutil.rmtree(repo.path / "pkg")
    repo.write("pkg", "now a file\n")


def type_changes(repo: Repo) -> None:
    (repo.path / "README.md").unlink()
    (repo.path / "README.md").symlink_to("pkg/model.py")
    repo.write("pkg/model.py", "VERSION = 'exec'\n").chmod(0o755)


def embedded_repository(repo: Repo) -> None:
    inner = Repo.create(repo.path / "vendor/lib")
    inner.write("lib.py", "x = 1\n")


def submodule_moves_on(repo: Repo) -> None:
    inner = Repo.create(repo.path / "sub")
    repo.git("add", "sub")
    repo.commit("add an embedded repository")
    inner.write("new.py", "n = 1\n")
    inner.commit("moved on")
    inner.write("dirty.py", "only dirty content: git add -A records the commit alone\n")


def staged_then_reverted(repo: Repo) -> None:
    repo.write("pkg/model.py", "VERSION = 'staged'\n")
    repo.git("add", "pkg/model.py")
    repo.write("pkg/model.py", "VERSION = 1\n")


def removed_from_index_only(repo: Repo) -> None:
    repo.git("rm", "-q", "--cached", "pkg/model.py")


def hidden_by_index_flags(repo: Repo) -> None:
    repo.git("update-index", "--assume-unchanged", "pkg/model.py")
    repo.write("pkg/model.py", "VERSION = 'assumed'\n")
    repo.git("update-index", "--skip-worktree", "README.md")
    repo.write("README.md", "skipped\n")


def file_mode_ignored(repo: Repo) -> None:
    repo.git("config", "core.fileMode", "false")
    (repo.path / "pkg/model.py").chmod(0o755)
    repo.write("pkg/__init__.py", "changed = True\n")


def odd_names(repo: Repo) -> None:
    for name in ("with space.py", "new\nline.txt", "ünï/cödé.py", "-dash", "tab\tname", '"q"'):
        repo.write(name, f"{name!r}\n")
    (repo.path / "pkg/model.py").rename(repo.path / "pkg/renamed model.py")


def ignore_rules_and_tracked_ignored(repo: Repo) -> None:
    repo.write("logs/.gitignore", "*\n!keep.txt\n!.gitignore\n")
    repo.write("logs/keep.txt", "kept\n")
    repo.write("logs/drop.txt", "dropped\n")
    repo.write("weights/tracked.ckpt", "forced\n")  # (not under a link path: refused there)
    repo.git("add", "-f", "weights/tracked.ckpt")
    repo.commit("a tracked file that is ignored")
    repo.write("weights/tracked.ckpt", "changed anyway\n")
    repo.write("weights/new.ckpt", "ignored\n")


def clean_filter(repo: Repo) -> None:
    repo.git("config", "filter.upper.clean", "tr a-z A-Z")
    repo.write(".gitattributes", "*.up filter=upper\n*.txt text eol=lf\n")
    repo.write("shout.up", "quiet words\n")
    repo.write("crlf.txt", "line one\r\nline two\r\n")


def conflict(repo: Repo) -> None:
    repo.git("switch", "-q", "-c", "other")
    repo.write("pkg/model.py", "VERSION = 'other'\n")
    repo.write("gone.py", "deleted on main\n")
    repo.commit("other")
    repo.git("switch", "-q", "main")
    repo.write("pkg/model.py", "VERSION = 'main'\n")
    repo.write("gone.py", "changed on main\n")
    repo.commit("main")
    repo.git("merge", "other", check=False)
    repo.write("gone.py", "resolved by editing\n")


def nothing_changed(repo: Repo) -> None:
    pass


STATES: list[Callable[[Repo], None]] = [
    intent_to_add,
    file_becomes_directory,
    directory_becomes_file,
    type_changes,
    embedded_repository,
    submodule_moves_on,
    staged_then_reverted,
    removed_from_index_only,
    hidden_by_index_flags,
    file_mode_ignored,
    odd_names,
    ignore_rules_and_tracked_ignored,
    clean_filter,
    conflict,
    nothing_changed,
]


@pytest.mark.parametrize("make_state", STATES, ids=[f.__name__ for f in STATES])
def test_capture_equals_git_add_all(
    repo: Repo, tmp_path: Path, make_state: Callable[[Repo], None]
) -> None:
    make_state(repo)
    expected = add_all_tree(repo, tmp_path)
    before = user_state(repo.path)
    snap = repo.snapshot_json("--no-worktree", "--no-push")
    assert snap["tree"] == expected
    assert user_state(repo.path) == before


def loose_objects(repo: Repo) -> set[str]:
    objects = repo.path / ".git/objects"
    return {
        str(p.relative_to(objects))
        for p in objects.rglob("*")
        if p.is_file() and "pack" not in p.parts and "info" not in p.parts
    }


def test_a_too_large_untracked_file_is_refused_before_git_stores_it(repo: Repo) -> None:
    repo.git("config", "slurm.maxUntrackedSize", "1k")
    repo.write("pkg/model.py", "VERSION = 'edited'\n")
    repo.write("checkpoint.bin", "x" * 8192)
    before = loose_objects(repo)
    res = repo.snapshot("--no-worktree", "--no-push")
    assert res.returncode == 2 and "checkpoint.bin (0.0 MB)" in res.stderr
    assert loose_objects(repo) == before  # not even the edited file was hashed


def test_large_tracked_files_are_not_limited(repo: Repo) -> None:
    repo.write("weights.bin", "w" * 100)
    repo.commit("a small tracked file")
    repo.git("config", "slurm.maxUntrackedSize", "1k")
    repo.write("weights.bin", "w" * 8192)
    assert repo.snapshot("--no-worktree", "--no-push").returncode == 0


def test_parse_status_reads_every_record_kind() -> None:
    out = "\0".join(
        [
            "# branch.oid 0123",
            "1 .M N... 100644 100644 100644 aaa aaa pkg/a file.py",
            "1 M. N... 100644 100644 100644 aaa bbb staged-only.py",
            "1 .D N... 100644 100644 000000 aaa aaa gone.py",
            "2 .M N... 100644 100644 100644 aaa aaa R100 new name.py",
            "old name.py",
            "u UU N... 100644 100644 100644 100644 a b c both.py",
            "? untracked dir/file.py",
            "? vendor/lib/",
            "",
        ]
    )
    changes = parse_status(out)
    assert changes.paths == [
        "pkg/a file.py",
        "gone.py",
        "new name.py",
        "both.py",
        "untracked dir/file.py",
        "vendor/lib",
    ]
    assert changes.untracked == ["untracked dir/file.py", "vendor/lib"]


def test_capture_in_a_subdirectory_and_with_the_worktree_dir_inside(
    repo: Repo, tmp_path: Path
) -> None:
    repo.write("pkg/new.py", "n = 1\n")
    os.mkdir(repo.path / "snaps")
    expected_copy = tmp_path / "expected"
    shutil.copytree(repo.path, expected_copy, symlinks=True)
    git(expected_copy, "add", "-A", "--", ":/", ":(exclude)snaps")
    expected = git(expected_copy, "write-tree").strip()
    repo.write("snaps/stray.txt", "inside the worktree dir: never captured\n")
    snap = repo.snapshot_json("--worktree-dir", "../snaps", "--no-push", cwd=repo.path / "pkg")
    assert snap["tree"] == expected
