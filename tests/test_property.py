"""Property: for any working tree, the snapshot is what `git add -A` + `git write-tree` give
in a copy of the repository, and the user's state is unchanged."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from gitrepo import Repo, git, user_state
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NAMES = [
    "a.py",
    "b c.txt",
    "ünï.md",
    "-dash",
    "new\nline",
    "dir/x.py",
    "dir/sub/y.py",
    ".hidden",
    "dir/ignored.tmp",
    "z.log",
    "dir/sub/deep/z.bin",
]
IGNORE_RULES = ["*.tmp", "*.log", "!z.log", "sub/", "deep", "x.py"]

op = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(NAMES), st.binary(max_size=64), st.booleans()),
    st.tuples(st.just("delete"), st.sampled_from(NAMES)),
    st.tuples(st.just("symlink"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("rename"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("chmod"), st.sampled_from(NAMES)),
    st.tuples(
        st.just("ignore"),
        st.sampled_from(["", "dir/", "dir/sub/"]),
        st.lists(st.sampled_from(IGNORE_RULES), max_size=3),
    ),
)


def apply(root: Path, action: tuple[Any, ...]) -> None:
    kind = action[0]
    path = root / str(action[1])
    try:
        if kind == "write":
            _, _, data, executable = action
            _clear(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(0o755 if executable else 0o644)
        elif kind == "delete":
            _clear(path)
        elif kind == "symlink":
            _clear(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(str(action[2]))
        elif kind == "rename" and path.is_file() and not path.is_symlink():
            target = root / str(action[2])
            if target == path:
                return
            _clear(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)
        elif kind == "chmod" and path.is_file() and not path.is_symlink():
            path.chmod(path.stat().st_mode ^ 0o100)
        elif kind == "ignore":
            rules = action[2]
            (root / str(action[1])).mkdir(parents=True, exist_ok=True)
            (root / str(action[1]) / ".gitignore").write_text("\n".join(rules) + "\n")
    except (NotADirectoryError, FileExistsError, IsADirectoryError):
        pass  # a path runs through a file: that operation simply doesn't apply


def _clear(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(committed=st.lists(op, max_size=8), edits=st.lists(op, min_size=1, max_size=10))
def test_snapshot_equals_git_add_all(
    committed: list[tuple[Any, ...]], edits: list[tuple[Any, ...]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Repo.create(Path(tmp) / "project")
        for action in committed:
            apply(repo.path, action)
        repo.git("add", "-A")
        repo.git("commit", "-q", "--allow-empty", "-m", "random history")
        for action in edits:
            apply(repo.path, action)
        copy = Path(tmp) / "copy"
        shutil.copytree(repo.path, copy, symlinks=True)
        git(copy, "add", "-A")
        expected = git(copy, "write-tree").strip()
        before = user_state(repo.path)
        snap = repo.snapshot_json("--no-push")
        assert snap["tree"] == expected
        assert user_state(repo.path) == before
        listed = git(repo.path, "ls-tree", "-r", "-z", "--name-only", snap["commit"])
        for rel in filter(None, listed.split("\0")):
            wt_path = Path(snap["worktree"]) / rel
            assert os.path.lexists(wt_path), rel
