"""Odd places and states: another file system, a full disk, a read-only repository, a remote
that never answers, detached HEAD, a rebase stopped on a conflict, a sparse checkout, umasks.

Each either works exactly as on a plain checkout or fails with one `error:` line and a non-zero
status; either way the user's HEAD, index, refs and files are unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gitrepo import Repo, Result, git, run_tool, user_state
from launcher_apps.support import make_app_repo, results, run_app
from needs import MountTmpfs, unavailable
from silentserver import SilentServer
from test_snapshot import listing, tree_of_copy

from git_slurm.push import PUSH_TIMEOUT
from git_slurm.records import JobRef, add_jobs

LINKS = {"outputs", "multirun", ".submitit"}
SNAPSHOT_ON = [
    "hydra.launcher.snapshot.enabled=true",
    "hydra.launcher.snapshot.push_to_remote=false",
]
# root's capabilities that ignore file permissions: without them root meets modes as anyone
PERMISSION_BYPASS = "-dac_override,-dac_read_search,-fowner"


# ---- helpers ---------------------------------------------------------------------------------


def assert_one_error_line(res: Result) -> None:
    assert res.returncode != 0, res.stdout
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert "internal error" not in res.stderr and "Traceback" not in res.stderr, res.stderr


def snapshot_branches(repo: Repo) -> list[str]:
    return repo.git("branch", "--list", "--format=%(refname:short)", "slurm-job-*").split()


def registered_worktrees(repo: Repo) -> list[str]:
    porcelain = repo.git("worktree", "list", "--porcelain")
    return [ln.split(" ", 1)[1] for ln in porcelain.splitlines() if ln.startswith("worktree ")]


def assert_files_are_the_commit(repo: Repo, snap: dict[str, Any], scratch: Path) -> None:
    """The snapshot worktree holds exactly the commit's files (its links aside): compared with
    a checkout of the commit made through a throwaway index, sparse patterns off."""
    expected = scratch / f"expected-{snap['branch']}"
    expected.mkdir(parents=True)
    env = {"GIT_INDEX_FILE": str(scratch / f"index-{snap['branch']}")}
    git(repo.path, "-c", "core.sparseCheckout=false", "--work-tree", str(expected),
        "read-tree", "-u", "--reset", snap["commit"], env=env)  # fmt: skip
    assert listing(Path(snap["worktree"]), LINKS) == listing(expected, set())


def snapshot_json_unchanged(repo: Repo, *args: str) -> dict[str, Any]:
    """`git slurm-snapshot --json ARGS`, which must succeed and leave the user's state as it was."""
    before = user_state(repo.path)
    snap: dict[str, Any] = repo.snapshot_json(*args)
    assert user_state(repo.path) == before
    return snap


def finished_job() -> JobRef:
    """A local job whose process has exited (as the launcher records one)."""
    done = subprocess.Popen(["true"])
    done.wait()
    return JobRef(id=str(done.pid), kind="local")


# ---- another file system ---------------------------------------------------------------------


def test_worktrees_on_another_file_system(tmp_path: Path, mount_tmpfs: MountTmpfs) -> None:
    """Hard links cannot cross file systems (EXDEV), nor mount points of one (a bind mount has
    the same st_dev): materialisation must link only where it can and check out elsewhere."""
    repo, app = make_app_repo(tmp_path / "project")
    scratch = mount_tmpfs(tmp_path / "scratch", "64m")
    bound = mount_tmpfs(tmp_path / "bound", f"bind:{scratch}")
    (scratch / "a").mkdir()

    on_root = snapshot_json_unchanged(repo)  # in .git: a source on another file system
    (app / "late.py").write_text('VERSION = "one edit"\n', encoding="utf-8")
    first = snapshot_json_unchanged(repo, "--worktree-dir", str(scratch / "a"))
    assert Path(first["worktree"]).parent == scratch / "a"
    assert first["materialised"]["source"] is None  # the one on / was not linked across
    (app / "late.py").write_text('VERSION = "two edits"\n', encoding="utf-8")
    second = snapshot_json_unchanged(repo, "--worktree-dir", str(scratch / "a"))
    assert second["materialised"]["source"] == first["worktree"]  # same fs: linked
    assert second["materialised"]["linked"] > 0
    (app / "late.py").write_text('VERSION = "three edits"\n', encoding="utf-8")
    third = snapshot_json_unchanged(repo, "--worktree-dir", str(bound))  # same st_dev
    assert third["materialised"]["source"] is None

    for snap in (on_root, first, second, third):
        assert_files_are_the_commit(repo, snap, tmp_path)
    assert Path(third["worktree"], "exp/late.py").read_text() == 'VERSION = "three edits"\n'

    # a job runs from a worktree on the tmpfs; gc then removes it from there
    done = run_app(app, "seed=0", "hydra/launcher=submitit_local", *SNAPSHOT_ON,
                   f"hydra.launcher.snapshot.worktree_dir={scratch / 'jobs'}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    (job,) = results(app / "multirun")
    assert job["cwd"].startswith(f"{scratch / 'jobs'}{os.sep}")
    assert job["modules"]["late"]["version"] == "three edits"
    for snap in (first, second, third):
        add_jobs(Path(snap["worktree"]), [finished_job()])
    gc = run_tool("slurm-gc", "--older-than", "0m", "--json", cwd=repo.path)
    assert gc.returncode == 0, gc.stderr
    removed = {w["path"] for w in gc.json()["worktrees"] if w["action"] == "removed"}
    made_for_the_job = str(Path(job["cwd"]).parent)
    # on_root too: made by hand, so no launcher holds it (no hand-off)
    expected = {on_root["worktree"], first["worktree"], second["worktree"], third["worktree"]}
    assert removed == expected | {made_for_the_job}
    assert sorted(p.name for p in scratch.rglob("*")) == ["a", "jobs"]
    assert "two edits" in repo.git("show", f"{second['branch']}:exp/late.py")


# ---- a full disk -----------------------------------------------------------------------------


def test_disk_full_during_checkout_leaves_nothing(tmp_path: Path, mount_tmpfs: MountTmpfs) -> None:
    repo = Repo.create(tmp_path / "project")
    for i in range(24):  # 3 MiB that do not compress away: more than the 1 MiB below
        (repo.path / "data").mkdir(exist_ok=True)
        (repo.path / f"data/blob{i}.bin").write_bytes(os.urandom(128 * 1024))
    repo.commit("data")
    repo.write("pkg/model.py", "VERSION = 'dirty'\n")
    tiny = mount_tmpfs(tmp_path / "tiny", "1m")
    before = user_state(repo.path)
    worktrees = registered_worktrees(repo)

    res = repo.snapshot("--worktree-dir", str(tiny))

    assert_one_error_line(res)
    assert "No space left on device" in res.stderr
    assert list(tiny.iterdir()) == []
    assert registered_worktrees(repo) == worktrees
    assert list((repo.path / ".git").glob("worktrees/*")) == []  # no admin dir left, locked or not
    assert snapshot_branches(repo) == []
    assert user_state(repo.path) == before

    snap = repo.snapshot_json()  # the next one, where there is room, works
    assert snapshot_branches(repo) == [snap["branch"]]
    assert_files_are_the_commit(repo, snap, tmp_path)


# ---- a read-only repository ------------------------------------------------------------------


def without_permission_bypass(argv: list[str]) -> list[str]:
    """`argv` run so that file modes hold for it: as root, without the capabilities that
    ignore them (the venv's interpreter may not be executable by another user: a pyenv
    Python under /root is not, so `runuser -u nobody` could not run it)."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("setpriv") is None:
        unavailable("the tests run as root and setpriv (util-linux) is missing")
    caps = PERMISSION_BYPASS
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", "--", *argv]


def run_restricted(cwd: Path, *args: str) -> Result:
    done = subprocess.run(
        without_permission_bypass(["git", *args]),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def tree_state(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every path under root, .git included: content (or link), mode, mtime."""
    state = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        body = (
            os.readlink(path)
            if path.is_symlink()
            else path.read_bytes().hex()
            if path.is_file()
            else "dir"
        )
        state[str(path.relative_to(root))] = (body, info.st_mode, info.st_mtime_ns)
    return state


@pytest.fixture
def read_only_repo(repo: Repo) -> Iterator[Repo]:
    repo.write("pkg/model.py", "VERSION = 'read-only'\n")
    repo.write("new.py", "untracked = True\n")
    subprocess.run(["chmod", "-R", "a-w", str(repo.path)], check=True)
    yield repo
    subprocess.run(["chmod", "-R", "u+w", str(repo.path)], check=True)


@pytest.mark.parametrize(
    "args",
    [[], ["--no-worktree"], ["--worktree-dir", "{elsewhere}"]],
    ids=["default", "no-worktree", "writable-worktree-dir"],
)
def test_read_only_repository_fails_cleanly(
    read_only_repo: Repo, tmp_path: Path, args: list[str]
) -> None:
    repo = read_only_repo
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = run_restricted(repo.path, "rev-parse", "--git-dir")
    assert probe.returncode == 0, probe.stderr
    assert run_restricted(repo.path, "update-ref", "refs/heads/x", "HEAD").returncode != 0
    before, files = user_state(repo.path), tree_state(repo.path)

    argv = [a.format(elsewhere=elsewhere) for a in args]
    res = run_restricted(repo.path, "slurm-snapshot", *argv)

    assert_one_error_line(res)
    assert "ermission denied" in res.stderr or "insufficient permission" in res.stderr
    assert tree_state(repo.path) == files
    assert user_state(repo.path) == before
    assert list(elsewhere.iterdir()) == []


def test_gc_in_a_read_only_repository_removes_nothing_and_says_so(read_only_repo: Repo) -> None:
    files = tree_state(read_only_repo.path)
    res = run_restricted(read_only_repo.path, "slurm-gc", "--older-than", "0m")
    assert res.returncode == 0, res.stderr
    assert "0 snapshot worktrees" in res.stdout
    assert tree_state(read_only_repo.path) == files


# ---- a remote that never answers -------------------------------------------------------------


PUSH_BOUND_S = 3
# Time for the process around the push (Python, capture, commit, cleanup): a bound on a hang,
# not on speed. A whole run took 3.8-6.3 s at load average 15 on 2 cores, so the 12 s this was
# left a load average of ~40 (CI beside six engineers' runs) no room. It stays far below the
# default bound: a push that ignored slurm.pushTimeout and waited PUSH_TIMEOUT still fails.
OVERHEAD_S = 45
assert PUSH_BOUND_S + OVERHEAD_S < PUSH_TIMEOUT / 2


@pytest.fixture
def silent_remote() -> Iterator[SilentServer]:
    """A remote whose server accepts connections and never answers a byte."""
    server = SilentServer()
    try:
        yield server
    finally:
        server.socket.close()  # a push still waiting gets a reset: nothing is left behind


def timed_snapshot(repo: Repo, *args: str) -> tuple[Result, float]:
    started = time.monotonic()
    try:
        res = run_tool("slurm-snapshot", *args, cwd=repo.path, timeout=PUSH_BOUND_S + OVERHEAD_S)
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"git slurm-snapshot {' '.join(args)} still ran after {PUSH_BOUND_S + OVERHEAD_S} s "
            f"with slurm.pushTimeout={PUSH_BOUND_S}s: the push to a silent remote is not bounded"
        )
    return res, time.monotonic() - started


@pytest.mark.timeout(4 * (PUSH_BOUND_S + OVERHEAD_S))
def test_push_to_a_silent_remote_is_bounded(repo: Repo, silent_remote: SilentServer) -> None:
    repo.git("remote", "add", "origin", silent_remote.url)
    repo.git("config", "slurm.pushTimeout", f"{PUSH_BOUND_S}s")
    repo.write("pkg/model.py", "VERSION = 'push'\n")
    before = user_state(repo.path)

    default, seconds = timed_snapshot(repo, "--json")  # the default push only warns
    assert default.returncode == 0, default.stderr
    assert default.json()["pushed"] is None
    assert "warning: push of " in default.stderr and "Traceback" not in default.stderr
    assert seconds >= PUSH_BOUND_S  # it did wait for the remote, as long as it was told
    assert silent_remote.connections() >= 1

    branches, worktrees = snapshot_branches(repo), registered_worktrees(repo)
    explicit, seconds = timed_snapshot(repo, "--push")  # asked for: an error, nothing left
    assert_one_error_line(explicit)
    assert explicit.stderr.startswith("error: push of ")
    assert silent_remote.connections() >= 1
    assert snapshot_branches(repo) == branches
    assert registered_worktrees(repo) == worktrees
    assert user_state(repo.path) == before


# ---- unusual repository states ---------------------------------------------------------------


def assert_snapshot_is_git_add_all(repo: Repo, tmp_path: Path) -> dict[str, Any]:
    """The snapshot's tree is what `git add -A` stages in a copy; its worktree holds it; the
    user's state is unchanged."""
    expected = tree_of_copy(repo, tmp_path)
    before = user_state(repo.path)
    res = repo.snapshot("--json")
    assert res.returncode == 0, res.stderr
    snap: dict[str, Any] = res.json()
    assert snap["tree"] == expected
    assert user_state(repo.path) == before
    assert_files_are_the_commit(repo, snap, tmp_path)
    return snap


def test_detached_head(repo: Repo, tmp_path: Path) -> None:
    repo.write("pkg/model.py", "VERSION = 2\n")
    first = repo.commit("second")
    repo.git("switch", "-q", "--detach", "HEAD~1")
    repo.write("pkg/model.py", "VERSION = 'detached edit'\n")
    repo.write("untracked.py", "u = 1\n")
    snap = assert_snapshot_is_git_add_all(repo, tmp_path)
    assert snap["base"] == repo.git("rev-parse", "HEAD").strip()
    assert snap["base"] != first
    message = repo.git("log", "-1", "--format=%B", snap["commit"])
    assert "Branch: detached HEAD" in message
    assert repo.git("rev-parse", f"{snap['commit']}^").strip() == snap["base"]


def test_rebase_stopped_on_a_conflict(repo: Repo, tmp_path: Path) -> None:
    repo.git("switch", "-q", "-c", "topic")
    repo.write("pkg/model.py", "VERSION = 'topic'\n")
    repo.write("pkg/extra.py", "extra = 1\n")
    repo.commit("topic")
    repo.git("switch", "-q", "main")
    repo.write("pkg/model.py", "VERSION = 'main'\n")
    repo.commit("main")
    repo.git("switch", "-q", "topic")
    repo.git("rebase", "main", check=False)
    assert (repo.path / ".git/rebase-merge").is_dir()
    assert "<<<<<<<" in (repo.path / "pkg/model.py").read_text()
    res_before = repo.git("status", "--porcelain")
    assert "UU pkg/model.py" in res_before
    snap = assert_snapshot_is_git_add_all(repo, tmp_path)
    content = Path(snap["worktree"], "pkg/model.py").read_text()
    assert content == (repo.path / "pkg/model.py").read_text() and "<<<<<<<" in content
    assert (repo.path / ".git/rebase-merge").is_dir()  # the rebase can go on
    assert repo.git("status", "--porcelain") == res_before


def make_sparse(repo: Repo, mode: str) -> None:
    """Only `pkg/` (and top-level files) checked out: with `git sparse-checkout set` (cone
    mode, per-worktree config), or the older way (core.sparseCheckout in the shared config)."""
    if mode == "cone":
        repo.git("sparse-checkout", "set", "pkg")
    else:
        repo.git("config", "core.sparseCheckout", "true")
        (repo.path / ".git/info").mkdir(exist_ok=True)
        (repo.path / ".git/info/sparse-checkout").write_text("/*\n!/docs/\n!/data/\n")
        repo.git("read-tree", "-m", "-u", "HEAD")


@pytest.mark.parametrize("mode", ["cone", "legacy"])
def test_sparse_checkout_keeps_files_outside_the_cone(
    repo: Repo, tmp_path: Path, mode: str
) -> None:
    """Files outside the sparse patterns are in the index (skip-worktree), not deleted: the
    snapshot keeps them, and its worktree has them (jobs read them), while the user's
    checkout stays sparse."""
    repo.write("docs/guide.md", "# guide\n")
    repo.write("data/config.yaml", "lr: 0.1\n")
    repo.commit("more")
    make_sparse(repo, mode)
    assert not (repo.path / "docs").exists() and not (repo.path / "data").exists()
    repo.write("pkg/model.py", "VERSION = 'sparse'\n")
    snap = assert_snapshot_is_git_add_all(repo, tmp_path)
    files = repo.git("ls-tree", "-r", "--name-only", snap["commit"]).split()
    assert {"docs/guide.md", "data/config.yaml", "pkg/model.py"} <= set(files)
    worktree = Path(snap["worktree"])
    assert (worktree / "docs/guide.md").read_text() == "# guide\n"
    assert (worktree / "data/config.yaml").read_text() == "lr: 0.1\n"
    repo.write("pkg/model.py", "VERSION = 'sparse 2'\n")  # the next one links from it
    again = assert_snapshot_is_git_add_all(repo, tmp_path / "again")
    assert again["materialised"]["source"] == snap["worktree"]
    assert (Path(again["worktree"]) / "docs/guide.md").read_text() == "# guide\n"
    assert not (repo.path / "docs").exists()  # the user's checkout is still sparse


# ---- umask -----------------------------------------------------------------------------------


def all_paths(root: Path) -> dict[str, int]:
    return {str(p): p.lstat().st_mode for p in root.rglob("*")}


@pytest.mark.parametrize("umask", [0o077, 0o022], ids=["077", "022"])
def test_created_files_respect_the_umask(repo: Repo, umask: int) -> None:
    """Everything git-slurm and its git calls create (worktree dirs and files, records, lock
    files, link targets) has no permission bit the user's umask takes away; snapshot files
    are read-only on top of that."""
    repo.write("pkg/model.py", "VERSION = 'umask'\n")
    repo.write("tool.sh", "#!/bin/sh\n").chmod(0o755)
    existing = all_paths(repo.path)
    before = user_state(repo.path)
    elsewhere = repo.path / ".git" / "other-snapshots"  # the second links from the first
    for extra in ([], ["--worktree-dir", str(elsewhere)]):
        done = subprocess.run(
            ["git", "slurm-snapshot", "--json", *extra],
            cwd=repo.path,
            capture_output=True,
            text=True,
            umask=umask,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["materialised"]["linked"] > 0
    assert user_state(repo.path) == before
    created = {p: m for p, m in all_paths(repo.path).items() if p not in existing}
    for kind in ("/slurm-snapshots/", "/other-snapshots/", "git-slurm.json", ".lock"):
        assert any(kind in p for p in created), kind
    assert any(p.endswith("/outputs") and stat.S_ISDIR(m) for p, m in created.items())
    too_open = {
        p: oct(stat.S_IMODE(m))
        for p, m in created.items()
        if not stat.S_ISLNK(m) and stat.S_IMODE(m) & umask
    }
    assert too_open == {}
    snapshot_files = [
        p
        for p, m in created.items()
        if stat.S_ISREG(m) and "-snapshots/" in p and not p.endswith("/.git")
    ]
    assert snapshot_files and all(not os.stat(p).st_mode & 0o222 for p in snapshot_files)
