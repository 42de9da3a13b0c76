"""Real git repositories for tests, and a fingerprint of everything of the user's."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent


def git(cwd: Path, *args: str, check: bool = True, env: Optional[dict[str, str]] = None) -> str:
    """Run the real git; return stdout."""
    full_env = dict(os.environ, **(env or {}))
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full_env,
        check=False,
        errors="surrogateescape",  # paths that are not UTF-8 (tests/test_odd_repos.py)
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_tool(
    name: str, *args: str, cwd: Path, env: Optional[dict[str, str]] = None, timeout: float = 300
) -> Result:
    """Run an installed executable (e.g. `git slurm-snapshot`) as a user would."""
    full_env = dict(os.environ, **(env or {}))
    done = subprocess.run(
        ["git", name, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        errors="surrogateescape",
        env=full_env,
        timeout=timeout,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


@dataclass
class Repo:
    path: Path

    @classmethod
    def create(cls, path: Path, *, commit: bool = True) -> Repo:
        path.mkdir(parents=True)
        git(path, "init", "-q")
        repo = cls(path)
        if commit:
            repo.write("README.md", "# project\n")
            repo.write("pkg/__init__.py", "")
            repo.write("pkg/model.py", "VERSION = 1\n")
            repo.write(".gitignore", "outputs/\nmultirun/\n.submitit/\n*.ckpt\n")
            repo.commit("initial")
        return repo

    def git(self, *args: str, check: bool = True) -> str:
        return git(self.path, *args, check=check)

    def write(self, rel: str, text: str) -> Path:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        return p

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def snapshot(self, *args: str, cwd: Optional[Path] = None) -> Result:
        return run_tool("slurm-snapshot", *args, cwd=cwd or self.path)

    def snapshot_json(self, *args: str, cwd: Optional[Path] = None) -> Any:
        res = self.snapshot("--json", *args, cwd=cwd)
        assert res.returncode == 0, res.stderr
        return res.json()


LINK_TARGETS = ("outputs", "multirun", ".submitit")


def _file_state(root: Path, skip: Path) -> dict[str, tuple[str, int, int]]:
    """(content hash or link target, mode, mtime_ns) of every path under root except `skip`
    and the empty link-target directories a snapshot creates by design."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == skip:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = here / name
            if here == root and name in LINK_TARGETS and p.is_dir() and not any(p.iterdir()):
                continue
            st = p.lstat()
            if p.is_symlink():
                digest = "link:" + os.readlink(p)
            elif p.is_file():
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                digest = "dir"
            state[str(p.relative_to(root))] = (
                digest,
                st.st_mode,
                st.st_mtime_ns if not p.is_dir() else 0,
            )
    return state


def user_state(repo_path: Path, git_dir: Optional[Path] = None) -> dict[str, Any]:
    """Everything a snapshot must leave unchanged: HEAD, index, stash, HEAD's reflog, the
    user's own refs, and every file of the working tree (content, mode, mtime)."""
    gd = git_dir or repo_path / ".git"
    index = gd / "index"
    refs = git(repo_path, "for-each-ref", "--format=%(refname) %(objectname)")
    user_refs = [ln for ln in refs.splitlines() if "slurm-job-" not in ln]
    reflog = gd / "logs" / "HEAD"
    return {
        "head": (gd / "HEAD").read_text(),
        "index": hashlib.sha256(index.read_bytes()).hexdigest() if index.exists() else None,
        "index_mtime": index.stat().st_mtime_ns if index.exists() else None,
        "refs": user_refs,
        "stash": git(repo_path, "stash", "list"),
        "reflog": reflog.read_text() if reflog.exists() else None,
        "files": _file_state(repo_path, gd),
    }
