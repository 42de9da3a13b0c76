"""Incremental snapshot worktrees: hard links to an earlier snapshot plus git's own update must
give exactly a plain checkout, never link a file of the user's, and never spread a file a job
changed in an earlier snapshot."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from gitrepo import Repo, git

LINKS = {"outputs", "multirun", ".submitit"}


def snapshot(repo: Repo, *args: str) -> Any:
    return repo.snapshot_json("--no-push", *args)


def tree_listing(root: Path, skip: set[str]) -> dict[str, tuple[str, ...]]:
    """rel -> what a checkout decides about it: file content and exec bit, link target, dir."""
    found: dict[str, tuple[str, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in sorted(dirnames + filenames):
            p = here / name
            rel = p.relative_to(root).as_posix()
            if rel == ".git" or any(rel == s or rel.startswith(f"{s}/") for s in skip):
                continue
            if p.is_symlink():
                found[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                found[rel] = ("dir",)
            else:
                found[rel] = ("file", p.read_bytes().hex(), str(os.access(p, os.X_OK)))
        dirnames[:] = [d for d in dirnames if not (here / d).is_symlink()]
    return found


def plain_checkout(repo: Repo, commit: str, where: Path) -> Path:
    """What `git worktree add` makes of `commit` (the definition of right)."""
    repo.git("worktree", "add", "-q", "--detach", str(where), commit)
    return where


def assert_equals_checkout(repo: Repo, snap: Any, tmp_path: Path, skip: set[str] = LINKS) -> None:
    expected = plain_checkout(repo, snap["commit"], tmp_path / f"expected-{snap['branch']}")
    assert tree_listing(Path(snap["worktree"]), skip) == tree_listing(expected, skip)
    repo.git("worktree", "remove", "--force", str(expected))


def regular_files(root: Path) -> list[Path]:
    """Every regular file of a work tree, outside `.git` (the snapshots live in there)."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git" and not Path(dirpath, d).is_symlink()]
        files += [Path(dirpath, f) for f in filenames if not Path(dirpath, f).is_symlink()]
    return [f for f in files if f.name != ".git" or f.parent != root]


def inodes(root: Path) -> set[int]:
    return {f.lstat().st_ino for f in regular_files(root)}


def edit_history(repo: Repo) -> list[Any]:
    """Snapshots with edits, deletions, additions, mode and symlink changes in between."""
    repo.write("pkg/data.py", "DATA = 1\n")
    repo.write("scripts/run.sh", "#!/bin/sh\necho run\n").chmod(0o755)
    (repo.path / "latest").symlink_to("pkg/model.py")
    repo.write("deep/a/b/c.py", "c = 1\n")
    repo.commit("more files")
    snaps = [snapshot(repo)]
    repo.write("pkg/model.py", "VERSION = 2\n")  # edit
    (repo.path / "deep/a/b/c.py").unlink()  # the only file of three directories goes
    repo.write("new/module.py", "m = 1\n")  # addition in a new directory
    snaps.append(snapshot(repo))
    (repo.path / "scripts/run.sh").chmod(0o644)  # mode change
    (repo.path / "pkg/data.py").chmod(0o755)
    (repo.path / "latest").unlink()
    (repo.path / "latest").symlink_to("pkg/data.py")  # symlink retargeted
    snaps.append(snapshot(repo))
    (repo.path / "README.md").unlink()
    (repo.path / "README.md").symlink_to("new/module.py")  # file -> symlink
    (repo.path / "latest").unlink()
    repo.write("latest", "a file again\n")  # symlink -> file
    shutil.rmtree(repo.path / "new")
    repo.write("new", "directory -> file\n")
    snaps.append(snapshot(repo))
    return snaps


def test_incremental_worktrees_equal_plain_checkouts(repo: Repo, tmp_path: Path) -> None:
    snaps = edit_history(repo)
    assert snaps[0]["materialised"]["source"] is None
    for earlier, snap in pairwise(snaps):
        assert snap["reused"] is False
        assert snap["materialised"]["source"] == earlier["worktree"]
        assert snap["materialised"]["linked"] > 0
    for snap in snaps:
        assert_equals_checkout(repo, snap, tmp_path)


def test_unchanged_files_share_inodes_and_git_status_is_clean(repo: Repo) -> None:
    first = snapshot(repo)
    repo.write("pkg/model.py", "VERSION = 'next'\n")
    second = snapshot(repo)
    a, b = Path(first["worktree"]), Path(second["worktree"])
    assert (a / "README.md").stat().st_ino == (b / "README.md").stat().st_ino
    assert (a / "pkg/model.py").stat().st_ino != (b / "pkg/model.py").stat().st_ino
    assert (b / "pkg/model.py").read_text() == "VERSION = 'next'\n"
    assert (a / "pkg/model.py").read_text() == "VERSION = 1\n"  # git never wrote in place
    status = git(b, "status", "--porcelain", "--untracked-files=no")
    assert status == ""
    assert git(b, "rev-parse", "HEAD").strip() == second["commit"]


def test_user_files_are_never_hard_linked(repo: Repo) -> None:
    user = inodes(repo.path)
    snaps = [snapshot(repo)]
    for n in range(3):
        repo.write(f"pkg/step{n}.py", f"n = {n}\n")
        snaps.append(snapshot(repo))
    for snap in snaps:
        assert not inodes(Path(snap["worktree"])) & user
    assert all(f.stat().st_nlink == 1 for f in regular_files(repo.path))


def test_snapshot_files_are_read_only_and_directories_writable(repo: Repo) -> None:
    repo.write("run.sh", "#!/bin/sh\n").chmod(0o755)
    first = snapshot(repo)
    repo.write("pkg/model.py", "VERSION = 'ro'\n")
    second = snapshot(repo)
    for snap in (first, second):
        root = Path(snap["worktree"])
        files = regular_files(root)
        assert files and all(f.stat().st_mode & 0o222 == 0 for f in files)
        assert (root / "run.sh").stat().st_mode & stat.S_IXUSR
        assert (root / "pkg").stat().st_mode & stat.S_IWUSR
        assert (root / ".git").stat().st_mode & stat.S_IWUSR


def _edit_in_place(path: Path, text: str) -> None:
    path.chmod(0o644)
    path.write_text(text)


def _replace_keeping_stat(path: Path, text: str) -> None:
    """A new inode with the same size and mtime: only the inode tells."""
    info = path.stat()
    path.unlink()
    path.write_text(text)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda wt: _edit_in_place(wt / "pkg/model.py", "VERSION = 'job edited me'\n"),
        lambda wt: _replace_keeping_stat(wt / "README.md", "# tampered\n"),
        lambda wt: (wt / "README.md").unlink(),
        lambda wt: git(wt, "rm", "-q", "--cached", "README.md"),
    ],
    ids=["edited", "replaced-same-stat", "deleted", "unstaged-in-its-index"],
)
def test_a_changed_source_is_never_linked_from(repo: Repo, tmp_path: Path, tamper: Any) -> None:
    first = snapshot(repo)
    tamper(Path(first["worktree"]))
    repo.write("pkg/other.py", "o = 1\n")
    second = snapshot(repo)
    assert second["materialised"]["source"] is None
    assert_equals_checkout(repo, second, tmp_path)
    admin = Path(git(Path(first["worktree"]), "rev-parse", "--absolute-git-dir").strip())
    assert json.loads((admin / "git-slurm.json").read_text())["shareable"] is False
    repo.write("pkg/third.py", "t = 1\n")
    third = snapshot(repo)
    assert third["materialised"]["source"] == second["worktree"]  # never the tainted one


def test_a_directory_swapped_for_a_symlink_to_the_user_is_refused(
    repo: Repo, tmp_path: Path
) -> None:
    first = snapshot(repo)
    source_pkg = Path(first["worktree"]) / "pkg"
    shutil.rmtree(source_pkg)
    source_pkg.symlink_to(repo.path / "pkg")
    before = {f: f.stat().st_nlink for f in regular_files(repo.path / "pkg")}
    repo.write("other.py", "o = 1\n")
    second = snapshot(repo)
    assert second["materialised"]["source"] is None
    assert {f: f.stat().st_nlink for f in regular_files(repo.path / "pkg")} == before
    assert not inodes(Path(second["worktree"])) & inodes(repo.path)
    assert_equals_checkout(repo, second, tmp_path)


def test_tracked_files_under_link_paths(repo: Repo, tmp_path: Path) -> None:
    # (a link path holding tracked files is refused: logs is tracked only after `first`)
    repo.write("logs/tracked.txt", "a tracked log\n")
    first = snapshot(repo, "--link", "logs")
    assert os.readlink(Path(first["worktree"]) / "logs") == str(repo.path / "logs")
    repo.commit("tracked files where links went")
    repo.write("pkg/model.py", "VERSION = 'links'\n")
    second = snapshot(repo, "--link", "results")  # logs is no link here: its files must be
    wt = Path(second["worktree"])
    assert second["materialised"]["source"] == first["worktree"]
    assert not (wt / "logs").is_symlink()
    assert (wt / "logs/tracked.txt").read_text() == "a tracked log\n"
    assert (wt / "results").is_symlink()
    assert (repo.path / "logs/tracked.txt").stat().st_nlink == 1  # the user's stays unlinked
    assert_equals_checkout(repo, second, tmp_path, skip=LINKS | {"results"})


def test_changed_attributes_mean_a_checkout(repo: Repo, tmp_path: Path) -> None:
    repo.write("notes.txt", "one\ntwo\n")
    repo.commit("text")
    snapshot(repo)
    repo.write(".gitattributes", "*.txt eol=crlf\n")
    second = snapshot(repo)
    assert second["materialised"]["source"] is None
    assert (Path(second["worktree"]) / "notes.txt").read_bytes() == b"one\r\ntwo\r\n"
    assert_equals_checkout(repo, second, tmp_path)


def test_submodule_entries_become_empty_directories(repo: Repo, tmp_path: Path) -> None:
    inner = Repo.create(repo.path / "vendor/lib")
    repo.git("add", "vendor/lib")
    repo.commit("a submodule")
    snapshot(repo)
    inner.write("more.py", "m = 1\n")
    inner.commit("moved on")
    repo.write("pkg/model.py", "VERSION = 'sub'\n")
    second = snapshot(repo)
    assert second["materialised"]["source"] is not None
    lib = Path(second["worktree"]) / "vendor/lib"
    assert lib.is_dir() and not any(lib.iterdir())
    assert_equals_checkout(repo, second, tmp_path)


def test_removing_a_source_leaves_the_later_snapshot_whole(repo: Repo, tmp_path: Path) -> None:
    first = snapshot(repo)
    repo.write("pkg/model.py", "VERSION = 'survivor'\n")
    second = snapshot(repo)
    repo.git("worktree", "unlock", first["worktree"])
    repo.git("worktree", "remove", "--force", first["worktree"])
    assert_equals_checkout(repo, second, tmp_path)


def test_concurrent_snapshots_of_different_trees_link_at_once(repo: Repo, tmp_path: Path) -> None:
    first = snapshot(repo)
    checkouts = []
    for n in range(4):
        other = tmp_path / f"checkout-{n}"
        repo.git("worktree", "add", "-q", "--detach", str(other))
        Repo(other).write("pkg/model.py", f"VERSION = 'concurrent {n}'\n")
        checkouts.append(other)
    procs = [  # a prefix each: this is about linking at once, not about branch names
        subprocess.Popen(
            ["git", "slurm-snapshot", "--json", "--no-push", "--prefix", f"c{n}"],
            cwd=where,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, where in enumerate(checkouts)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    snaps = [json.loads(out) for out, _ in results]
    made = {first["worktree"]} | {snap["worktree"] for snap in snaps}
    for snap in snaps:  # the first snapshot, or one of the others that finished earlier
        assert snap["materialised"]["source"] in made - {snap["worktree"]}
    for n, snap in enumerate(snaps):
        model = Path(snap["worktree"]) / "pkg/model.py"
        assert model.read_text() == f"VERSION = 'concurrent {n}'\n"
        assert_equals_checkout(repo, snap, tmp_path)
    assert (Path(first["worktree"]) / "pkg/model.py").read_text() == "VERSION = 1\n"
