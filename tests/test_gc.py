"""`git slurm-gc` on real repositories: what it removes, what it keeps and why, and that
nothing a job wrote and nothing behind a link is ever lost."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from gitrepo import Repo, git, run_tool, user_state

from git_slurm.diskusage import freeable
from git_slurm.gc import GcOptions, GcReport, WorktreeReport, collect, settle
from git_slurm.jobstate import Survey, process_start_ticks
from git_slurm.launch import job_ref
from git_slurm.records import (
    HANDOFF_GRACE,
    Handoff,
    JobRef,
    SnapshotRecord,
    add_jobs,
    admin_dir_of,
    read_record,
    repository_lock,
    write_record,
)
from git_slurm.repo import discover
from git_slurm.snapshotworktrees import find_all
from git_slurm.worktrees import remove_worktree

ROOT = Path(__file__).resolve().parent.parent
DAY = 86400.0
WEEK = 7 * DAY


# ---- helpers -----------------------------------------------------------------------------


def snapshot(repo: Repo, *args: str) -> Path:
    """A new snapshot worktree (the repo is changed first, so it is never a reused one)."""
    n = (
        len(list((repo.path / ".git" / "worktrees").glob("*")))
        if (repo.path / ".git" / "worktrees").exists()
        else 0
    )
    repo.write("pkg/stamp.py", f"N = {n}\n")
    data = repo.snapshot_json(*args)
    assert data["reused"] is False
    return Path(data["worktree"])


def age(worktree: Path, seconds: float) -> SnapshotRecord:
    """Move everything the record remembers `seconds` into the past."""
    admin = admin_dir_of(worktree)
    assert admin is not None
    with repository_lock(admin.parent.parent):
        record = read_record(admin)
        assert record is not None
        record.created -= seconds
        record.last_used -= seconds
        record.launches = [replace(x, time=x.time - seconds) for x in record.launches]
        record.jobs = [replace(j, submitted=j.submitted - seconds) for j in record.jobs]
        write_record(admin, record)
    return record


def gc(repo: Repo, *args: str, cwd: Path | None = None) -> Any:
    res = run_tool("slurm-gc", "--json", *args, cwd=cwd or repo.path)
    assert res.returncode == 0, res.stderr
    return res.json()


def outcome(report: Any, worktree: Path) -> dict[str, Any]:
    found: list[dict[str, Any]] = [w for w in report["worktrees"] if w["path"] == str(worktree)]
    assert len(found) == 1, report
    return found[0]


def branch_of(worktree: Path) -> str:
    admin = admin_dir_of(worktree)
    record = read_record(admin) if admin else None
    assert record is not None
    return record.branches[0]


def run_collect(repo: Repo, **settings: Any) -> GcReport:
    """gc in-process: a week's age, at the current time, unless told otherwise."""
    options = GcOptions(**{"older_than": WEEK, "now": _now(), **settings})
    return collect(discover(repo.path), options)


def _now() -> float:
    return time.time()


def report_of(report: GcReport, worktree: Path) -> WorktreeReport:
    found = [w for w in report.worktrees if w.path == str(worktree)]
    assert len(found) == 1, report
    return found[0]


def worktree_list(repo: Repo) -> str:
    return repo.git("worktree", "list", "--porcelain")


def refs(repo: Repo) -> str:
    return repo.git("for-each-ref", "--format=%(refname) %(objectname)")


def tree_state(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every path under `root`, .git included: content (or link target), mode, mtime."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            if p.is_symlink():
                what = "link:" + os.readlink(p)
            elif p.is_file():
                what = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                what = "dir"
            state[str(p.relative_to(root))] = (what, st.st_mode, st.st_mtime_ns)
    return state


def everything(repo: Repo) -> tuple[str, str, dict[str, tuple[str, int, int]]]:
    return worktree_list(repo), refs(repo), tree_state(repo.path)


# ---- selection and age -------------------------------------------------------------------


def test_age_boundaries(repo: Repo) -> None:
    """Kept one second before the threshold, removed one second after."""
    worktree = snapshot(repo)
    record = age(worktree, 30 * DAY)
    just_below = record.last_used + WEEK - 1
    report = run_collect(repo, now=just_below)
    assert report_of(report, worktree).reason == "younger"
    assert worktree.is_dir()
    report = run_collect(repo, now=record.last_used + WEEK + 1)
    assert report_of(report, worktree).action == "removed"
    assert not worktree.exists()
    assert str(worktree) not in worktree_list(repo)


@pytest.mark.parametrize(
    ("form", "days_kept", "days_removed"),
    [("2.weeks.ago", 13, 15), ("3.days.ago", 2.9, 3.1), ("yesterday", 0.9, 1.1), ("12h", 0.4, 0.6)],
)
def test_older_than_forms(repo: Repo, form: str, days_kept: float, days_removed: float) -> None:
    young, old = snapshot(repo), snapshot(repo)
    age(young, days_kept * DAY)
    age(old, days_removed * DAY)
    report = gc(repo, "--older-than", form)
    assert outcome(report, young)["reason"] == "younger"
    assert outcome(report, old)["action"] == "removed"
    assert young.is_dir() and not old.exists()


def test_default_age_is_config_then_7d(repo: Repo) -> None:
    worktree = snapshot(repo)
    age(worktree, 2 * DAY)
    assert outcome(gc(repo), worktree)["reason"] == "younger"  # 7d
    repo.git("config", "slurm.gcOlderThan", "1.day.ago")
    report = gc(repo)
    assert report["older_than_text"] == "1.day.ago"
    assert outcome(report, worktree)["action"] == "removed"


def test_a_reused_worktree_is_young_again(repo: Repo) -> None:
    worktree = snapshot(repo)
    age(worktree, 30 * DAY)
    again = repo.snapshot_json()  # the same tree: the launch reuses the worktree
    assert again["reused"] is True and Path(again["worktree"]) == worktree
    assert outcome(gc(repo), worktree)["reason"] == "younger"


def test_only_worktrees_git_slurm_made_are_touched(repo: Repo, tmp_path: Path) -> None:
    """A user's worktree, even one in the snapshot dir with a snapshot-like name, stays."""
    ours = snapshot(repo)
    age(ours, 30 * DAY)
    mine = tmp_path / "mine"
    repo.git("worktree", "add", "--detach", str(mine))
    lookalike = repo.path / ".git" / "slurm-snapshots" / "slurm-job-20200101-000000"
    repo.git("worktree", "add", "--detach", str(lookalike))
    report = gc(repo, "--older-than", "0m", "--force")
    assert [w["path"] for w in report["worktrees"]] == [str(ours)]
    assert mine.is_dir() and lookalike.is_dir()
    assert str(mine) in worktree_list(repo) and str(lookalike) in worktree_list(repo)


def test_a_worktree_someone_else_locked_is_kept(repo: Repo) -> None:
    worktree = snapshot(repo)
    age(worktree, 30 * DAY)
    repo.git("worktree", "unlock", str(worktree))
    repo.git("worktree", "lock", "--reason", "keep: paper figures", str(worktree))
    kept = outcome(gc(repo, "--force"), worktree)
    assert (kept["reason"], kept["detail"]) == (
        "locked",
        "locked by someone else: keep: paper figures",
    )
    repo.git("worktree", "unlock", str(worktree))  # unlocked: ours to remove again
    assert outcome(gc(repo), worktree)["action"] == "removed"


def test_gc_inside_a_snapshot_worktree_keeps_that_one(repo: Repo) -> None:
    here, other = snapshot(repo), snapshot(repo)
    age(here, 30 * DAY)
    age(other, 30 * DAY)
    report = gc(repo, cwd=here)
    assert outcome(report, here)["reason"] == "current"
    assert outcome(report, other)["action"] == "removed"


# ---- launches in flight ------------------------------------------------------------------


def handoff_of(pid: int, host: str | None = None) -> str:
    ticks = process_start_ticks(pid)
    assert ticks is not None
    return Handoff(host or socket.gethostname(), pid, ticks).token


def test_a_fresh_launch_is_kept_while_its_launcher_lives(
    repo: Repo, sleeper: subprocess.Popen[bytes]
) -> None:
    """--older-than 0m must not take a worktree a launch has just made and not yet recorded
    jobs for, while the launcher that will record them lives; then the age rule decides."""
    worktree = snapshot(repo, "--handoff", handoff_of(sleeper.pid))
    age(worktree, 30 * DAY)  # no clock protects it: only the launcher's life
    report = gc(repo, "--older-than", "0m", "--force")
    assert (outcome(report, worktree)["reason"], outcome(report, worktree)["detail"]) == (
        "in-use",
        f"its launcher (pid {sleeper.pid}) has not recorded its jobs yet",
    )
    sleeper.kill()
    sleeper.wait()
    assert outcome(gc(repo, "--older-than", "0m"), worktree)["action"] == "removed"


def test_a_launch_that_recorded_its_jobs_is_no_longer_handed_off(
    repo: Repo, sleeper: subprocess.Popen[bytes]
) -> None:
    worktree = snapshot(repo, "--handoff", handoff_of(os.getpid()))
    add_jobs(worktree, [job_ref(str(sleeper.pid), "local", branch_of(worktree))])
    sleeper.kill()
    sleeper.wait()
    assert outcome(gc(repo, "--older-than", "0m"), worktree)["action"] == "removed"


def test_a_snapshot_made_by_hand_has_no_hand_off(repo: Repo) -> None:
    """`git slurm-snapshot; sleep 2; git slurm-gc --older-than 1s --force` removes it."""
    data = repo.snapshot_json()
    assert data["handoff"] is None
    worktree = Path(data["worktree"])
    age(worktree, 2)
    res = run_tool("slurm-gc", "--older-than", "1s", "--force", cwd=repo.path)
    assert res.returncode == 0, res.stderr
    assert not worktree.exists()


def test_a_launcher_on_another_host_gets_a_bounded_grace(repo: Repo) -> None:
    token = f"elsewhere-{socket.gethostname()}:{os.getpid()}:1"
    data = repo.snapshot_json("--handoff", token)
    assert data["handoff"] == token
    worktree = Path(data["worktree"])
    kept = outcome(gc(repo, "--older-than", "0m"), worktree)
    assert kept["reason"] == "in-use" and "may not be recorded yet" in kept["detail"]
    age(worktree, HANDOFF_GRACE + 60)
    assert outcome(gc(repo, "--older-than", "0m"), worktree)["action"] == "removed"


@pytest.mark.parametrize("token", ["", "host", "host:12", "host:-1:5", ":1:2", "h:1:x"])
def test_a_bad_handoff_is_refused(repo: Repo, token: str) -> None:
    before = refs(repo)
    res = run_tool("slurm-snapshot", "--handoff", token, cwd=repo.path)
    assert res.returncode == 2 and res.stderr.startswith("error: bad --handoff"), res.stderr
    assert refs(repo) == before


def test_a_half_made_snapshot_is_ours_only_once_it_is_idle(repo: Repo) -> None:
    """Locked as being made without a record: a crash, or a snapshot still being made."""
    path = repo.path / ".git" / "slurm-snapshots" / "slurm-job-20200101-000000"
    reason = "git-slurm snapshot slurm-job-20200101-000000 (being made)"
    repo.git("worktree", "add", "--detach", "--lock", "--reason", reason, str(path))
    repo.write("outputs/kept.txt", "an output\n")
    (path / "outputs").symlink_to(repo.path / "outputs")  # links may exist already
    report = gc(repo, "--older-than", "0m")
    assert outcome(report, path)["reason"] == "in-use"
    admin = admin_dir_of(path)
    assert admin is not None
    hour_ago = _now() - 3600
    for p in [admin, *admin.iterdir(), path]:
        os.utime(p, (hour_ago, hour_ago), follow_symlinks=False)
    assert outcome(gc(repo, "--older-than", "2h"), path)["reason"] == "younger"
    assert outcome(gc(repo, "--older-than", "30m"), path)["action"] == "removed"
    assert not path.exists()
    assert (repo.path / "outputs" / "kept.txt").read_text() == "an output\n"


def test_a_record_changed_while_gc_ran_is_kept(repo: Repo) -> None:
    """A launch reuses the worktree between gc's survey and its removal: gc must see it."""
    worktree = snapshot(repo)
    age(worktree, 30 * DAY)
    checkout = discover(repo.path)
    (candidate,) = find_all(checkout.common_dir)
    assert repo.snapshot_json()["reused"] is True  # bumps last_used under the lock
    result = settle(checkout, candidate, Survey(statuses={}), force=False, dry_run=False)
    assert result is not None and (result.action, result.reason) == ("kept", "in-use")
    assert worktree.is_dir()


def test_two_gcs_at_once_remove_each_worktree_once(repo: Repo) -> None:
    worktrees = [snapshot(repo) for _ in range(6)]
    for w in worktrees:
        age(w, 30 * DAY)
    argv = ["git", "slurm-gc", "--json"]
    procs = [
        subprocess.Popen(argv, cwd=repo.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    assert all(err == b"" for _, err in results)
    removed = [
        w["path"]
        for out, _ in results
        for w in json.loads(out)["worktrees"]
        if w["action"] == "removed"
    ]
    assert sorted(removed) == sorted(str(w) for w in worktrees)  # each exactly once
    assert not any(w.exists() for w in worktrees)


# ---- live jobs ---------------------------------------------------------------------------


def test_a_live_local_job_keeps_its_worktree_a_dead_one_does_not(
    repo: Repo, sleeper: subprocess.Popen[bytes]
) -> None:
    worktree = snapshot(repo)
    add_jobs(worktree, [job_ref(str(sleeper.pid), "local")])
    age(worktree, 30 * DAY)
    kept = outcome(gc(repo, "--older-than", "0m", "--force"), worktree)
    assert kept["reason"] == "live-job"
    assert kept["detail"] == f"local job {sleeper.pid} RUNNING"
    assert kept["jobs"][0]["live"] is True
    sleeper.kill()
    sleeper.wait()
    removed = outcome(gc(repo, "--older-than", "0m"), worktree)
    assert removed["action"] == "removed"
    assert removed["jobs"][0]["state"] == "EXITED"
    assert not worktree.exists()


def test_an_unreadable_slurm_job_keeps_its_worktree(repo: Repo, tmp_path: Path) -> None:
    """No squeue on PATH: the state cannot be read, so the job may be alive."""
    worktree = snapshot(repo)
    add_jobs(worktree, [JobRef(id="4242", kind="slurm")])
    age(worktree, 30 * DAY)
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git") or "git")
    path = os.pathsep.join([str(only_git), str(ROOT / "bin"), str(Path(sys.executable).parent)])
    args = ("--json", "--older-than", "0m", "--force")
    res = run_tool("slurm-gc", *args, cwd=repo.path, env={"PATH": path})
    assert res.returncode == 0, res.stderr
    kept = outcome(res.json(), worktree)
    assert kept["reason"] == "live-job"
    assert kept["jobs"][0]["state"] == "UNKNOWN" and "squeue not found" in kept["detail"]


# ---- job-written files -------------------------------------------------------------------


def test_job_written_files_keep_the_worktree_unless_forced(repo: Repo) -> None:
    worktree = snapshot(repo)
    (worktree / "outputs" / "run1").mkdir()
    (worktree / "outputs" / "run1" / "result.txt").write_text("through the link\n")
    (worktree / "wandb" / "run-1").mkdir(parents=True)  # ignored below: still the job's
    (worktree / "wandb" / "run-1" / "events").write_text("e\n")
    (worktree / ".gitignore").write_text((worktree / ".gitignore").read_text() + "wandb/\n")
    (worktree / "last.ckpt").write_bytes(b"\0" * 10)  # ignored by *.ckpt
    (worktree / "train.log").write_text("untracked\n")
    (worktree / "pkg" / "model.py").write_text("VERSION = 'edited by a job'\n")
    age(worktree, 30 * DAY)
    kept = outcome(gc(repo), worktree)
    assert kept["reason"] == "job-files"
    assert sorted(kept["job_files"]) == [
        ".gitignore",
        "last.ckpt",
        "pkg/model.py",
        "train.log",
        "wandb/run-1/events",
    ]
    assert kept["job_files_count"] == 5
    assert kept["detail"].startswith("holds 5 job-written files: ")
    assert worktree.is_dir()
    removed = outcome(gc(repo, "--force"), worktree)
    assert removed["action"] == "removed" and removed["job_files_count"] == 5
    assert not worktree.exists()
    assert (repo.path / "outputs" / "run1" / "result.txt").read_text() == "through the link\n"


def test_outputs_behind_links_survive_byte_for_byte(repo: Repo, tmp_path: Path) -> None:
    """Links whose targets hold outputs, one a job replaced by a link to an outside dir:
    removal unlinks them and never enters them."""
    worktree = snapshot(repo)
    for rel in ("outputs/2024-01-01/12-00-00", "multirun/sweep/0", ".submitit/123"):
        target = worktree / rel  # written through the links, as jobs do
        target.mkdir(parents=True)
        (target / "data.bin").write_bytes(os.urandom(4096))
        (target / "log.txt").write_text(f"{rel}\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("not the worktree's\n")
    (worktree / ".submitit").unlink()
    (worktree / ".submitit").symlink_to(outside)
    before = user_state(repo.path)
    outside_before = tree_state(outside)
    age(worktree, 30 * DAY)
    assert outcome(gc(repo), worktree)["action"] == "removed"
    assert not worktree.exists()
    assert user_state(repo.path) == before  # every output file, content, mode and mtime
    assert tree_state(outside) == outside_before


def test_a_link_a_job_replaced_by_a_directory_holds_job_files(repo: Repo) -> None:
    worktree = snapshot(repo)
    (worktree / "multirun").unlink()
    (worktree / "multirun").mkdir()
    (worktree / "multirun" / "only-here.txt").write_text("x\n")
    age(worktree, 30 * DAY)
    kept = outcome(gc(repo), worktree)
    assert (kept["reason"], kept["job_files"]) == ("job-files", ["multirun/only-here.txt"])
    assert outcome(gc(repo, "--force"), worktree)["action"] == "removed"
    assert (repo.path / "multirun").is_dir()


# ---- vanished worktrees ------------------------------------------------------------------


def test_a_vanished_worktree_is_pruned(repo: Repo) -> None:
    worktree = snapshot(repo)
    admin = admin_dir_of(worktree)
    assert admin is not None
    age(worktree, 30 * DAY)
    shutil.rmtree(worktree)
    report = gc(repo)
    assert outcome(report, worktree)["action"] == "pruned"
    assert not admin.exists()
    assert str(worktree) not in worktree_list(repo)


def test_pruning_ours_leaves_the_users_vanished_worktrees(repo: Repo, tmp_path: Path) -> None:
    worktree, mine = snapshot(repo), tmp_path / "mine"
    repo.git("worktree", "add", "--detach", str(mine))
    age(worktree, 30 * DAY)
    shutil.rmtree(worktree)
    shutil.rmtree(mine)
    assert outcome(gc(repo), worktree)["action"] == "pruned"
    listing = worktree_list(repo)
    assert str(worktree) not in listing
    assert f"worktree {mine}\n" in listing  # the user's, prunable: git's business, not ours


@pytest.mark.parametrize("users_vanished_worktree", [False, True])
def test_undoing_a_half_added_worktree_prunes_only_it(
    repo: Repo, tmp_path: Path, users_vanished_worktree: bool
) -> None:
    """A snapshot undoes its worktree with `worktrees.remove_worktree`; when git no longer sees
    a worktree there (interrupted before its `.git` file), a prune takes the admin dir, but
    never one that would also take the user's own vanished worktree."""
    if users_vanished_worktree:
        mine = tmp_path / "mine"
        repo.git("worktree", "add", "--detach", str(mine))
        shutil.rmtree(mine)
    half = tmp_path / "half"
    repo.git("worktree", "add", "--no-checkout", "--detach", str(half))
    (half / ".git").unlink()  # as if `git worktree add` stopped before writing it

    remove_worktree(discover(repo.path).git, half)

    listing = worktree_list(repo)
    assert (f"worktree {half}\n" in listing) is users_vanished_worktree  # then: gc's business
    if users_vanished_worktree:
        assert f"worktree {mine}\n" in listing  # the user's stays, prunable


def test_a_vanished_worktree_with_a_live_job_keeps_its_record(
    repo: Repo, sleeper: subprocess.Popen[bytes]
) -> None:
    """Perhaps not vanished at all, only not mounted here: its jobs' record must stay."""
    worktree = snapshot(repo)
    add_jobs(worktree, [job_ref(str(sleeper.pid), "local")])
    age(worktree, 30 * DAY)
    shutil.rmtree(worktree)
    assert outcome(gc(repo), worktree)["reason"] == "live-job"
    assert admin_dir_of_record(repo, worktree) is not None


def admin_dir_of_record(repo: Repo, worktree: Path) -> Path | None:
    for admin in (repo.path / ".git" / "worktrees").glob("*"):
        record = read_record(admin)
        if record is not None and record.worktree == str(worktree):
            return admin
    return None


# ---- dry run and report ------------------------------------------------------------------


def test_dry_run_changes_nothing_and_reports_the_same(
    repo: Repo, sleeper: subprocess.Popen[bytes]
) -> None:
    removable, with_files, vanished, live = (snapshot(repo) for _ in range(4))
    (with_files / "notes.txt").write_text("a job's\n")
    add_jobs(live, [job_ref(str(sleeper.pid), "local")])
    for w in (removable, with_files, vanished, live):
        age(w, 30 * DAY)
    shutil.rmtree(vanished)
    before = everything(repo)
    dry = gc(repo, "-n", "--branches")
    assert everything(repo) == before
    assert dry["dry_run"] is True
    actions = {w["path"]: (w["action"], w["reason"]) for w in dry["worktrees"]}
    real = gc(repo, "--branches")
    assert {w["path"]: (w["action"], w["reason"]) for w in real["worktrees"]} == actions
    assert actions == {
        str(removable): ("removed", "unused"),
        str(with_files): ("kept", "job-files"),
        str(vanished): ("pruned", "vanished"),
        str(live): ("kept", "live-job"),
    }
    assert dry["freed_bytes"] == real["freed_bytes"] > 0


def test_human_report_is_a_line_per_worktree_and_a_total(repo: Repo) -> None:
    old, young = snapshot(repo), snapshot(repo)
    (old / "notes.txt").write_text("a job's\n")
    age(old, 30 * DAY)
    age(young, DAY)
    res = run_tool("slurm-gc", cwd=repo.path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines == [
        f"kept {old} ({branch_of(old)}; no jobs recorded): holds 1 job-written file: notes.txt",
        f"kept {young} ({branch_of(young)}; no jobs recorded): last used 1d ago, younger than 7d",
        "2 snapshot worktrees (--older-than 7d): removed 0, pruned 0, kept 2; freed 0 B",
    ]


def test_json_is_exactly_one_object(repo: Repo) -> None:
    worktree = snapshot(repo)
    age(worktree, 30 * DAY)
    res = run_tool("slurm-gc", "--json", cwd=repo.path)
    assert res.returncode == 0 and res.stderr == ""
    assert len(res.stdout.strip().splitlines()) == 1
    data = json.loads(res.stdout)
    assert (data["removed"], data["kept"], data["pruned"]) == (1, 0, 0)
    assert data["older_than"] == WEEK and data["older_than_text"] == "7d"


def test_disk_freed_counts_a_shared_file_once_when_its_last_link_goes(repo: Repo) -> None:
    """Snapshots may hard-link the files they share: removing them all frees each once."""
    repo.write("big.bin", "x" * (1 << 20))
    repo.commit("a big file")
    first, second = snapshot(repo), snapshot(repo)
    for w in (first, second):
        age(w, 30 * DAY)
    report = gc(repo)
    assert report["removed"] == 2
    assert (1 << 20) <= report["freed_bytes"] < 3 * (1 << 20)
    assert report["freed_is_lower_bound"] is False


def test_a_hard_linked_file_counts_by_its_share_of_links(tmp_path: Path) -> None:
    """What the reminder reports a snapshot to hold: a file linked from two trees counts half
    in each (before, nothing: it was left out as 'shared')."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "data").write_bytes(os.urandom(64 * 1024))
    os.link(one / "data", two / "data")
    blocks = (one / "data").stat().st_blocks * 512
    dir_blocks = one.stat().st_blocks * 512
    assert freeable(one).bytes == dir_blocks
    assert freeable(one).fair_share == dir_blocks + blocks // 2


def test_disk_freed_leaves_out_a_file_linked_from_elsewhere(repo: Repo, tmp_path: Path) -> None:
    repo.write("big.bin", "x" * (1 << 20))
    repo.commit("a big file")
    worktree = snapshot(repo)
    os.link(worktree / "big.bin", tmp_path / "elsewhere.bin")  # its data stays after removal
    age(worktree, 30 * DAY)
    dry = run_tool("slurm-gc", "-n", cwd=repo.path)
    assert "would free at least " in dry.stdout.splitlines()[-1]
    report = gc(repo)
    assert report["freed_is_lower_bound"] is True
    assert report["freed_bytes"] < 1 << 19
    assert outcome(report, worktree)["shared_files"] >= 1
    assert (tmp_path / "elsewhere.bin").stat().st_size == 1 << 20


# ---- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "soon"], "error: unknown age 'soon'"),
        (["--older-than", "5y"], "error: unknown age '5y'"),
        (["--remote", "origin"], "error: --remote needs --branches"),
        (["--branches", "--remote", "nowhere"], "error: no remote named 'nowhere'"),
        (["--no-such-option"], "error: "),
    ],
)
def test_bad_input_is_one_error_line_and_changes_nothing(
    repo: Repo, args: list[str], message: str
) -> None:
    worktree = snapshot(repo)
    age(worktree, 30 * DAY)
    before = everything(repo)
    res = run_tool("slurm-gc", *args, cwd=repo.path)
    assert res.returncode == 2
    assert res.stdout == ""
    assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith(message)
    assert everything(repo) == before


def test_a_bad_configured_age_names_the_setting(repo: Repo) -> None:
    repo.git("config", "slurm.gcOlderThan", "someday")
    res = run_tool("slurm-gc", cwd=repo.path)
    assert res.returncode == 2
    assert res.stderr.startswith("error: git config slurm.gcOlderThan: unknown age 'someday'")


def test_not_a_repository(tmp_path: Path) -> None:
    res = run_tool("slurm-gc", cwd=tmp_path)
    assert res.returncode == 3
    assert res.stderr.startswith("error: not a git repository") and res.stdout == ""


# ---- branches ----------------------------------------------------------------------------


def branch_names(repo: Repo) -> set[str]:
    return set(repo.git("for-each-ref", "--format=%(refname:short)", "refs/heads/").split())


def test_branches_of_removed_snapshots_go_others_stay(
    repo: Repo, tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    removed = snapshot(repo)
    live = snapshot(repo)
    add_jobs(live, [job_ref(str(sleeper.pid), "local")])
    no_worktree = repo.snapshot_json("--no-worktree")["branch"]  # known by its reflog only
    moved = repo.snapshot_json("--no-worktree")["branch"]
    repo.git("update-ref", f"refs/heads/{moved}", "HEAD~0")  # then someone moved it
    checked_out = repo.snapshot_json("--no-worktree")["branch"]
    repo.git("worktree", "add", str(tmp_path / "co"), checked_out)
    repo.git("branch", "slurm-job-20200101-000000")  # a user's branch with a snapshot-like name
    names = {"removed": branch_of(removed), "live": branch_of(live)}
    before = branch_names(repo)
    month_later = _now() + 30 * DAY
    run_collect(repo, now=month_later, branches=True, dry_run=True)
    assert branch_names(repo) == before
    report = run_collect(repo, now=month_later, branches=True)
    actions = {b.name: (b.action, b.reason) for b in report.branches}
    assert actions == {
        names["removed"]: ("deleted", "unused"),
        no_worktree: ("deleted", "unused"),
        names["live"]: ("kept", "in-use"),
        moved: ("kept", "moved"),
        checked_out: ("kept", "checked-out"),
    }
    assert branch_names(repo) == before - {names["removed"], no_worktree}


def test_young_branches_stay(repo: Repo) -> None:
    branch = repo.snapshot_json("--no-worktree")["branch"]
    report = run_collect(repo, older_than=0.0, branches=True)
    assert [(b.name, b.reason) for b in report.branches] == [(branch, "younger")]
    assert branch in branch_names(repo)


def test_odd_branch_names_and_records_are_not_ours(repo: Repo) -> None:
    """A branch with the stamp's form but no real time, and a record that is JSON but no
    object, are simply not git-slurm's: no internal error."""
    repo.git("branch", "backup-20240231-120000")  # February 31st
    worktree = snapshot(repo)
    admin = admin_dir_of(worktree)
    assert admin is not None
    (admin / "git-slurm.json").write_text("[]\n")
    result = run_tool("slurm-gc", "--older-than", "0m", "--branches", "--json", cwd=repo.path)
    assert result.returncode == 0, result.stderr
    data = result.json()
    assert data["worktrees"] == []  # a worktree without a readable record is not ours
    assert "backup-20240231-120000" not in [b["name"] for b in data["branches"]]
    assert "backup-20240231-120000" in branch_names(repo)


@pytest.fixture
def remote(repo: Repo, tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    repo.git("remote", "add", "origin", str(bare))
    return bare


def remote_branches(bare: Path) -> set[str]:
    return set(git(bare, "for-each-ref", "--format=%(refname:short)", "refs/heads/").split())


def test_pushed_branches_stay_on_the_remote_without_remote(repo: Repo, remote: Path) -> None:
    pushed = {repo.snapshot_json("--no-worktree", "--push")["branch"] for _ in range(2)}
    report = run_collect(repo, now=_now() + 30 * DAY, branches=True)
    assert {b.name for b in report.branches if b.action == "deleted"} == pushed
    assert not branch_names(repo) & pushed
    assert remote_branches(remote) == pushed


def test_remote_deletes_there_only_what_still_is_the_snapshot(repo: Repo, remote: Path) -> None:
    same = repo.snapshot_json("--no-worktree", "--push")["branch"]
    moved = repo.snapshot_json("--no-worktree", "--push")["branch"]
    repo.write("elsewhere.txt", "x\n")
    repo.commit("someone else's work")
    repo.git("push", "-q", "--force", "origin", f"HEAD:refs/heads/{moved}")  # moved there
    report = run_collect(repo, now=_now() + 30 * DAY, branches=True, remote="origin")
    deleted = {b.name: b.remote for b in report.branches if b.action == "deleted"}
    assert deleted == {same: "origin", moved: None}
    assert remote_branches(remote) == {moved}  # someone's work now
    assert not branch_names(repo) & {same, moved}
    assert report.warnings == []
