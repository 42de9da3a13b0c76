"""Crashes at every step of a snapshot, and a launch whose submission fails.

The real `bin/git-slurm-snapshot` runs on a real, dirty repository and sends itself a real
SIGKILL or SIGINT at one step (`GIT_SLURM_TEST_FAULT`, git_slurm/faults.py). Afterwards the
user's HEAD, index, refs, stash and files are unchanged; after SIGINT nothing half made is
left; after SIGKILL what is left never blocks the next snapshot and `git slurm-gc` reclaims it.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest
from gitrepo import ROOT, Repo, git, run_tool, user_state
from launcher_apps.support import make_app_repo, run_app

from git_slurm.gc import GcOptions, collect
from git_slurm.records import (
    HANDOFF_GRACE,
    MAKING_GRACE,
    TEMP_FILE_GRACE,
    admin_dir_of,
    read_record,
    snapshot_worktrees,
    tree_lock,
    tree_lock_is_free,
)
from git_slurm.repo import discover

STEPS = ("capture", "commit", "branch", "push", "worktree", "links", "record")
SIGNALS = ("KILL", "INT")
LINKS = ("outputs", "multirun", ".submitit")
# What a SIGKILL at each step leaves: (private index copy, branch, pushed branch, worktree)
LEFT_BY_KILL = {
    "capture": (True, False, False, False),
    "commit": (False, False, False, False),
    "branch": (False, True, False, False),
    "push": (False, True, True, False),
    "worktree": (False, True, True, True),
    "links": (False, True, True, True),
    "record": (False, True, True, True),
}
# a gc this much later: every grace period has passed
LATER = 2 * max(MAKING_GRACE, HANDOFF_GRACE, TEMP_FILE_GRACE)


# ---- a dirty project with a remote and an earlier snapshot ------------------------------


@dataclass
class Project:
    repo: Repo
    origin: Path  # bare remote: snapshots push there by default
    earlier: dict[str, Any]  # a snapshot completed before the crash

    @property
    def git_dir(self) -> Path:
        return self.repo.path / ".git"

    @property
    def snapshots(self) -> Path:
        return self.git_dir / "slurm-snapshots"


def make_dirty(repo: Repo) -> None:
    """Tracked edits and a deletion, untracked files, a partly staged index, a stash."""
    repo.write("stashed.py", "s = 1\n")
    repo.git("add", "stashed.py")
    repo.git("stash", "-q")
    repo.write("pkg/model.py", "VERSION = 2\n")
    (repo.path / "README.md").unlink()
    repo.write("pkg/layers.py", "LAYERS = 3\n")
    repo.git("add", "pkg/layers.py")
    repo.write("notes/idea.md", "a bigger learning rate\n")
    repo.write("model.ckpt", "ignored\n")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    repo = Repo.create(tmp_path / "project")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    repo.git("remote", "add", "origin", str(origin))
    repo.write("outputs/2024-01-01/run.log", "an earlier run\n")
    earlier = repo.snapshot_json()  # clean: a source the crashed one links its files from
    make_dirty(repo)
    return Project(repo, origin, earlier)


# ---- running and observing ----------------------------------------------------------------


def crash(repo: Repo, step: str, signame: str) -> subprocess.CompletedProcess[str]:
    """The real executable, told to signal itself at `step`."""
    env = dict(os.environ, GIT_SLURM_TEST_FAULT=f"{step}:{signame}")
    return subprocess.run(
        [str(ROOT / "bin" / "git-slurm-snapshot"), "--json"],
        cwd=repo.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_died_of(done: subprocess.CompletedProcess[str], signame: str) -> None:
    assert done.stdout == ""
    if signame == "KILL":
        assert done.returncode == -9, done.stderr
    else:  # Ctrl-C: one line, the conventional status, never a traceback
        assert (done.returncode, done.stderr) == (130, "error: interrupted\n")


def snapshot_refs(path: Path) -> dict[str, str]:
    out = git(path, "for-each-ref", "--format=%(refname:lstrip=2) %(objectname)", "refs/heads/")
    return dict(ln.split(" ") for ln in out.splitlines() if "slurm-job-" in ln)


def temp_files(project: Project) -> list[Path]:
    """What a killed capture or record write leaves in a git dir."""
    dirs = [project.git_dir, *(project.git_dir / "worktrees").glob("*")]
    return [p for d in dirs for pat in ("git-slurm-index.*", "*.tmp") for p in d.glob(pat)]


def worktrees(repo: Repo) -> dict[str, Optional[str]]:
    """path -> lock reason of every linked worktree (None: not locked)."""
    found: dict[str, Optional[str]] = {}
    path = None
    for line in repo.git("worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            path = line[len("worktree ") :]
            found[path] = None
        elif line.startswith("locked") and path is not None:
            found[path] = line[len("locked ") :]
    found.pop(str(repo.path))
    return found


def half_made(repo: Repo) -> list[str]:
    """Linked worktrees without a record (half made): none may stay."""
    return [
        path
        for path in worktrees(repo)
        if (admin := admin_dir_of(Path(path))) is None or read_record(admin) is None
    ]


def assert_no_stale_locks(project: Project) -> None:
    """No lock file of git's is left, and none of git-slurm's flock files is held."""
    git_dir = project.git_dir
    ours = [p for p in git_dir.glob("git-slurm*.lock") if "-index." not in p.name]
    ours += (git_dir / "git-slurm-locks").glob("*.lock")
    left = [
        p for p in git_dir.rglob("*.lock") if p not in ours and project.snapshots not in p.parents
    ]
    assert left == []
    for path in ours:
        with path.open("a") as handle:  # raises BlockingIOError while someone holds it
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


def assert_fsck_clean(repo: Repo) -> None:
    done = subprocess.run(
        ["git", "fsck", "--full", "--no-dangling"],
        cwd=repo.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def gc_now(repo: Repo, older_than: str = "0m") -> dict[str, Any]:
    done = run_tool("slurm-gc", "--json", "--older-than", older_than, cwd=repo.path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    report: dict[str, Any] = done.json()
    return report


def outcome(report: dict[str, Any], path: str) -> tuple[str, str]:
    (found,) = [w for w in report["worktrees"] if w["path"] == path]
    return found["action"], found["reason"]


def assert_complete(repo: Repo, snap: dict[str, Any]) -> None:
    """A finished snapshot: recorded, its files its commit's, its links in place."""
    worktree = Path(snap["worktree"])
    admin = admin_dir_of(worktree)
    assert admin is not None and read_record(admin) is not None
    assert git(worktree, "rev-parse", "HEAD").strip() == snap["commit"]
    status = git(worktree, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert sorted(status) == sorted(f"?? {rel}" for rel in LINKS)  # the links, nothing else
    assert all(os.readlink(worktree / rel) == str(repo.path / rel) for rel in LINKS)


# ---- SIGKILL and SIGINT at every step ------------------------------------------------------


@pytest.mark.parametrize("signame", SIGNALS)
@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_step_is_undone_or_reclaimed(
    project: Project, step: str, signame: str
) -> None:
    repo = project.repo
    before = user_state(repo.path)
    branches, pushed = snapshot_refs(repo.path), snapshot_refs(project.origin)
    assert_died_of(crash(repo, step, signame), signame)
    assert user_state(repo.path) == before
    if signame == "INT":
        assert_undone_at_once(project, branches, pushed)
    else:
        assert_left_by_kill(project, step, branches, pushed)
    left = half_made(repo)

    after = repo.snapshot_json()  # the next snapshot of the same tree is not blocked
    assert after["dirty"] and not after["reused"] and after["worktree"] not in left
    assert_complete(repo, after)
    assert user_state(repo.path) == before

    report = gc_now(repo, "1h")  # abandoned ones go whatever their age
    for path in left:
        assert outcome(report, path) == ("removed", "abandoned")
    for snap in (project.earlier, after):  # finished ones as always
        assert outcome(report, snap["worktree"]) == ("kept", "younger")
    assert half_made(repo) == []
    assert sorted(worktrees(repo)) == sorted([project.earlier["worktree"], after["worktree"]])
    assert sorted(str(p) for p in project.snapshots.iterdir()) == sorted(worktrees(repo))
    assert_no_stale_locks(project)
    assert_fsck_clean(repo)
    assert user_state(repo.path) == before
    assert_nothing_accumulates(project, before)


def assert_undone_at_once(
    project: Project, branches: dict[str, str], pushed: dict[str, str]
) -> None:
    """Ctrl-C: every step already made is undone before the process exits."""
    assert snapshot_refs(project.repo.path) == branches
    assert snapshot_refs(project.origin) == pushed
    assert list(worktrees(project.repo)) == [project.earlier["worktree"]]
    assert [p.name for p in project.snapshots.iterdir()] == [project.earlier["branch"]]
    assert temp_files(project) == []
    assert_no_stale_locks(project)


def assert_left_by_kill(
    project: Project, step: str, branches: dict[str, str], pushed: dict[str, str]
) -> None:
    """SIGKILL: nothing ran after the step; exactly its leftovers are there."""
    index_copy, branch, on_remote, worktree = LEFT_BY_KILL[step]
    assert bool(temp_files(project)) == index_copy
    new = {n: c for n, c in snapshot_refs(project.repo.path).items() if n not in branches}
    assert len(new) == int(branch)
    new_pushed = {n: c for n, c in snapshot_refs(project.origin).items() if n not in pushed}
    assert new_pushed == (new if on_remote else {})
    left = half_made(project.repo)
    assert len(left) == int(worktree)
    if worktree:
        assert str(worktrees(project.repo)[left[0]]).endswith("(being made)")
        made_links = [rel for rel in LINKS if os.path.islink(Path(left[0], rel))]
        assert len(made_links) == {"worktree": 0, "links": 1, "record": 3}[step]
    assert_no_stale_locks(project)


def assert_nothing_accumulates(project: Project, before: dict[str, Any]) -> None:
    """A gc `LATER` (with --branches, on the remote too) leaves no trace of any snapshot:
    index copies of killed captures and branches of killed snapshots included."""
    checkout = discover(project.repo.path)
    options = GcOptions(0.0, time.time() + LATER, branches=True, remote="origin")
    report = collect(checkout, options)
    assert report.warnings == []
    assert worktrees(project.repo) == {} and list(project.snapshots.iterdir()) == []
    assert temp_files(project) == []
    assert snapshot_refs(project.repo.path) == {} and snapshot_refs(project.origin) == {}
    assert_fsck_clean(project.repo)
    assert user_state(project.repo.path) == before


@pytest.mark.parametrize("signame", SIGNALS)
def test_a_crash_while_checking_out_a_first_snapshot(tmp_path: Path, signame: str) -> None:
    """No earlier snapshot to link from: the crash hits a plain checkout, before its files."""
    repo = Repo.create(tmp_path / "project")
    project = Project(repo, tmp_path / "no-remote", {})
    make_dirty(repo)
    before = user_state(repo.path)
    assert_died_of(crash(repo, "worktree", signame), signame)
    assert user_state(repo.path) == before
    left = half_made(repo)
    if signame == "INT":
        assert left == [] and list(project.snapshots.iterdir()) == []
        assert snapshot_refs(repo.path) == {}
    else:
        (path,) = left
        assert [p.name for p in Path(path).iterdir()] == [".git"]
    after = repo.snapshot_json()
    assert_complete(repo, after)
    report = gc_now(repo, "1h")
    assert [outcome(report, path) for path in left] == [("removed", "abandoned")] * len(left)
    assert list(worktrees(repo)) == [after["worktree"]]
    assert [str(p) for p in project.snapshots.iterdir()] == [after["worktree"]]
    assert_no_stale_locks(project)
    assert_fsck_clean(repo)
    assert user_state(repo.path) == before


# ---- being made right now, or abandoned ---------------------------------------------------


def test_a_snapshot_being_made_right_now_is_never_reclaimed(project: Project) -> None:
    """The maker's tree lock tells: while a live process holds it, the half-made worktree is
    kept however long it has not changed; once nobody holds it, gc reclaims it."""
    repo = project.repo
    before = user_state(repo.path)
    assert_died_of(crash(repo, "links", "KILL"), "KILL")
    (path,) = half_made(repo)
    tree = git(Path(path), "rev-parse", "HEAD^{tree}").strip()
    admin = admin_dir_of(Path(path))
    assert admin is not None
    day_ago = time.time() - 86400
    for p in [admin, *admin.iterdir(), Path(path)]:  # a slow checkout: no change for a day
        os.utime(p, (day_ago, day_ago), follow_symlinks=False)
    with tree_lock(project.git_dir, tree):  # as a live snapshot of this tree holds it
        assert outcome(gc_now(repo), path) == ("kept", "in-use")
    assert outcome(gc_now(repo), path) == ("removed", "abandoned")
    assert not Path(path).exists() and half_made(repo) == []
    assert user_state(repo.path) == before


def test_a_half_made_snapshot_of_another_host_waits_for_its_grace(project: Project) -> None:
    """flock need not reach across hosts: another host's half-made snapshot is only reclaimed
    once it has been idle for the grace period."""
    repo = project.repo
    assert_died_of(crash(repo, "record", "KILL"), "KILL")
    (path,) = half_made(repo)
    admin = admin_dir_of(Path(path))
    assert admin is not None
    reason = (admin / "locked").read_text()
    (admin / "locked").write_text(reason.replace(" on ", " on other-login-node-"))
    assert outcome(gc_now(repo), path) == ("kept", "in-use")
    report = collect(discover(repo.path), GcOptions(0.0, time.time() + LATER))
    assert [(w.action, w.reason) for w in report.worktrees if w.path == path] == [
        ("removed", "abandoned")
    ]


def test_a_killed_capture_leaves_its_index_copy_only_until_gc(project: Project) -> None:
    """An index copy is kept while a capture may still use it, and removed after that."""
    repo = project.repo
    assert_died_of(crash(repo, "capture", "KILL"), "KILL")
    (copy,) = temp_files(project)
    assert copy.read_bytes()  # the user's index, as staged by the capture
    assert gc_now(repo)["temp_files"] == []
    assert copy.exists()
    report = collect(discover(repo.path), GcOptions(7 * 86400.0, time.time() + LATER, dry_run=True))
    assert report.temp_files == [str(copy)] and copy.exists()  # a dry run removes nothing
    assert repo.snapshot_json()["dirty"]  # and the next capture never minds it


# ---- a launch whose job submission fails -------------------------------------------------


def test_a_launch_whose_submission_fails_leaves_no_worktree_locked_for_ever(
    tmp_path: Path,
) -> None:
    """The snapshot is taken, then submitit fails before any job is queued (its folder cannot
    be made): the worktree holds no job, and gc reclaims it once the launch's grace is over."""
    repo, app = make_app_repo(tmp_path / "project")
    launched_from = user_state(repo.path)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("submitit cannot make its folder here\n")
    done = run_app(
        app,
        "seed=0,1",
        "hydra/launcher=submitit_local",
        "hydra.launcher.snapshot.enabled=true",
        "hydra.launcher.snapshot.push_to_remote=false",
        f"hydra.launcher.submitit_folder={blocker}/%j",
    )
    assert done.returncode != 0 and "File exists" in done.stderr
    assert "submitting the jobs failed; no job is recorded with" in done.stdout + done.stderr
    ((_admin, record),) = snapshot_worktrees(repo.path / ".git")
    assert record.jobs == []
    worktree = record.worktree
    before = user_state(repo.path)
    for key in ("head", "index", "index_mtime", "refs", "stash", "reflog"):
        assert before[key] == launched_from[key]
    # the launch only added its (empty) sweep dir
    assert before["files"].items() >= launched_from["files"].items()
    # the launcher that would have recorded jobs has exited: nothing keeps it
    assert outcome(gc_now(repo), worktree) == ("removed", "unused")
    assert worktrees(repo) == {} and not Path(worktree).exists()
    assert user_state(repo.path) == before


def test_probing_a_tree_lock_creates_nothing_and_sees_a_holder(tmp_path: Path) -> None:
    tree = "ab" + "0" * 38
    assert tree_lock_is_free(tmp_path, tree) is True
    assert not (tmp_path / "git-slurm-locks").exists()  # a probe is no lock file
    with tree_lock(tmp_path, tree):
        assert tree_lock_is_free(tmp_path, tree) is False
    assert tree_lock_is_free(tmp_path, tree) is True
