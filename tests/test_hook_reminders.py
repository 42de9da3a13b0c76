"""The post-checkout reminder, through real `git switch` / `git checkout` / `git worktree add`
with the hook installed by `git slurm-snapshot --install-hooks`."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
from gitrepo import ROOT, Repo, run_tool

from git_slurm import reminders
from git_slurm.hookinstall import install
from git_slurm.records import JobRef, add_jobs, snapshot_worktrees, write_record
from git_slurm.repo import discover

DAY = 86400.0
GC_COMMAND = "git slurm-gc --older-than 7d"


@dataclass
class Checkout:
    """What a user sees of one `git switch`/`git checkout`: its status and git-slurm's lines."""

    returncode: int
    lines: list[str]  # the hook's lines (a hook's output reaches the terminal on stderr)
    stderr: str


def git_checkout(
    cwd: Path, *args: str, env: Optional[dict[str, str]] = None, command: str = "switch"
) -> Checkout:
    done = subprocess.run(
        ["git", command, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=dict(os.environ, **(env or {})),
        timeout=60,
    )
    ours = [ln for ln in done.stderr.splitlines() if ln.startswith("git-slurm:")]
    return Checkout(done.returncode, ours, done.stderr)


def install_hook(repo: Repo) -> None:
    res = run_tool("slurm-snapshot", "--install-hooks", cwd=repo.path)
    assert res.returncode == 0, res.stderr


def snapshots(repo: Repo, count: int) -> list[str]:
    """`count` snapshots with distinct trees (so distinct worktrees); their branches."""
    committed = (repo.path / "pkg" / "model.py").read_text()
    branches = []
    for n in range(count):
        repo.write("pkg/model.py", f"VERSION = {100 + n}\n")
        branches.append(repo.snapshot_json("--no-push")["branch"])
    repo.write("pkg/model.py", committed)  # written back, not checked out: no hook runs
    return branches


def age_snapshots(repo: Repo, days: float, count: Optional[int] = None) -> None:
    """Make the first `count` snapshot worktrees look unused for `days`."""
    found = snapshot_worktrees(repo.path / ".git")
    for admin, record in found[: len(found) if count is None else count]:
        record.last_used = record.created = time.time() - days * DAY
        write_record(admin, record)


def wait_for_refresh(repo: Repo) -> None:
    """Block until the refresh the hook started has written the cache.

    The hook takes the refresh lock before it starts the refresh and hands it over, so the
    lock is held from before the checkout returns until the refresh ends: taking it waits
    exactly as long as needed (pytest-timeout bounds it).
    """
    with (repo.path / ".git" / reminders.REFRESH_LOCK_NAME).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture
def hooked(repo: Repo) -> Repo:
    install_hook(repo)
    return repo


def test_silent_when_there_is_nothing_to_say(hooked: Repo) -> None:
    snapshots(hooked, 1)
    seen = git_checkout(hooked.path, "-c", "feature")
    assert seen.returncode == 0 and seen.lines == []


def test_stale_snapshots_are_counted_with_their_size_and_the_gc_command(hooked: Repo) -> None:
    snapshots(hooked, 3)
    age_snapshots(hooked, 30, count=2)
    first = git_checkout(hooked.path, "-c", "feature")
    assert first.returncode == 0
    # sizes are measured by the refresh this checkout started, not by the hook itself
    assert first.lines == [f"git-slurm: 2 snapshot worktrees older than 7d: {GC_COMMAND}"]
    wait_for_refresh(hooked)
    second = git_checkout(hooked.path, "main")
    assert len(second.lines) == 1, second.stderr
    assert re.fullmatch(
        rf"git-slurm: 2 snapshot worktrees older than 7d hold [\d.]+ KiB: {GC_COMMAND}",
        second.lines[0],
    )


def test_the_threshold_is_git_slurm_gc_s(hooked: Repo) -> None:
    snapshots(hooked, 1)
    age_snapshots(hooked, 30)
    hooked.git("config", "slurm.gcOlderThan", "60d")
    assert git_checkout(hooked.path, "-c", "feature").lines == []
    hooked.git("config", "slurm.gcOlderThan", "2.weeks.ago")
    seen = git_checkout(hooked.path, "main")
    assert seen.lines == [
        "git-slurm: 1 snapshot worktree older than 2.weeks.ago: "
        "git slurm-gc --older-than 2.weeks.ago"
    ]


def test_slurm_reminders_false_silences_the_hook(hooked: Repo) -> None:
    branch = snapshots(hooked, 1)[0]
    age_snapshots(hooked, 30)
    hooked.git("config", "slurm.reminders", "false")
    seen = git_checkout(hooked.path, branch)
    assert seen.returncode == 0 and seen.lines == []


def test_file_checkouts_are_silent(hooked: Repo) -> None:
    snapshots(hooked, 1)
    age_snapshots(hooked, 30)
    hooked.write("README.md", "changed\n")
    seen = git_checkout(hooked.path, "--", "README.md", command="checkout")
    assert seen.returncode == 0 and seen.lines == []
    assert (hooked.path / "README.md").read_text() == "# project\n"


def test_a_bisect_walking_through_commits_is_not_interrupted(hooked: Repo) -> None:
    good = hooked.git("rev-parse", "HEAD").strip()
    for n in range(3):
        hooked.write("pkg/model.py", f"VERSION = {n + 2}\n")
        hooked.commit(f"change {n}")
    snapshots(hooked, 1)
    age_snapshots(hooked, 30)
    done = subprocess.run(
        ["git", "bisect", "start", "HEAD", good], cwd=hooked.path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "git-slurm:" not in done.stdout + done.stderr
    assert git_checkout(hooked.path, "HEAD~1", command="checkout").lines == []


def test_a_snapshot_branch_is_recognised_by_its_record(hooked: Repo) -> None:
    branch = snapshots(hooked, 1)[0]
    seen = git_checkout(hooked.path, branch)
    assert seen.lines == [
        f"git-slurm: {branch} is a snapshot branch: commits here change no job (each job runs "
        "its snapshot's worktree); to start work from it: git switch -c <new-branch>"
    ]


def test_a_tag_of_the_same_name_does_not_hide_a_snapshot_branch(hooked: Repo) -> None:
    branch = snapshots(hooked, 1)[0]
    hooked.git("tag", branch)  # `git symbolic-ref --short` would now say heads/<branch>
    seen = git_checkout(hooked.path, branch)
    assert len(seen.lines) == 1 and seen.lines[0].startswith(f"git-slurm: {branch} is a snap")


def test_a_branch_named_like_a_snapshot_is_not_one(hooked: Repo) -> None:
    seen = git_checkout(hooked.path, "-c", "slurm-job-20990101-000000")
    assert seen.returncode == 0 and seen.lines == []


def test_a_snapshot_branch_is_still_recognised_after_its_worktree_is_gone(hooked: Repo) -> None:
    branch = snapshots(hooked, 1)[0]
    worktree = snapshot_worktrees(hooked.path / ".git")[0][1].worktree
    hooked.git("worktree", "unlock", worktree)
    hooked.git("worktree", "remove", "--force", worktree)
    assert snapshot_worktrees(hooked.path / ".git") == []
    seen = git_checkout(hooked.path, branch)
    assert len(seen.lines) == 1 and seen.lines[0].startswith(f"git-slurm: {branch} is a snap")


def test_live_jobs_are_counted_until_they_end(
    hooked: Repo, sleeper: subprocess.Popen[bytes]
) -> None:
    snapshots(hooked, 1)
    worktree = Path(snapshot_worktrees(hooked.path / ".git")[0][1].worktree)
    add_jobs(worktree, [JobRef(id=str(sleeper.pid), kind="local")])
    common = hooked.path / ".git"
    reminders.refresh_cache(common, time.time() - 7 * DAY)
    seen = git_checkout(hooked.path, "-c", "feature")
    assert seen.lines == ["git-slurm: 1 job from snapshots still pending or running"]
    sleeper.send_signal(signal.SIGKILL)
    sleeper.wait()
    age_snapshots(hooked, 30)
    reminders.refresh_cache(common, time.time() - 7 * DAY)
    seen = git_checkout(hooked.path, "main")
    assert len(seen.lines) == 1 and "1 snapshot worktree older than 7d" in seen.lines[0]


def test_a_worktree_with_a_job_not_yet_asked_about_is_not_called_stale(
    hooked: Repo, sleeper: subprocess.Popen[bytes]
) -> None:
    snapshots(hooked, 1)
    worktree = Path(snapshot_worktrees(hooked.path / ".git")[0][1].worktree)
    add_jobs(worktree, [JobRef(id=str(sleeper.pid), kind="local")])
    age_snapshots(hooked, 30)
    assert git_checkout(hooked.path, "-c", "feature").lines == []
    wait_for_refresh(hooked)  # the checkout asked for the job's state in the background
    assert git_checkout(hooked.path, "main").lines == [
        "git-slurm: 1 job from snapshots still pending or running"
    ]


@pytest.fixture
def slurm_job(tmp_path: Path) -> Iterator[str]:
    """A real SLURM job that runs until cancelled (cancelled at the end in any case)."""
    done = subprocess.run(
        ["sbatch", "--parsable", f"--chdir={tmp_path}", "--output=/dev/null", "--wrap=sleep 600"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    job_id = done.stdout.strip().split(";")[0]
    yield job_id
    subprocess.run(["scancel", job_id], capture_output=True, timeout=30, check=False)


def refresh_until(common: Path, live: bool, timeout: float = 60.0) -> None:
    """Refresh the cache (as the hook's background process does) until it holds every job
    as `live`; SLURM takes a moment to show a cancelled job as ended."""
    deadline = time.monotonic() + timeout
    while True:
        cache = reminders.refresh_cache(common, time.time() - 7 * DAY)
        if cache.jobs and all(job.live == live for job in cache.jobs.values()):
            return
        assert time.monotonic() < deadline, f"job states still {cache.jobs}"
        time.sleep(0.2)


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_a_slurm_job_is_counted_while_slurm_holds_it(hooked: Repo, slurm_job: str) -> None:
    snapshots(hooked, 1)
    worktree = Path(snapshot_worktrees(hooked.path / ".git")[0][1].worktree)
    add_jobs(worktree, [JobRef(id=slurm_job, kind="slurm")])
    common = hooked.path / ".git"
    refresh_until(common, live=True)
    seen = git_checkout(hooked.path, "-c", "feature")
    assert seen.lines == ["git-slurm: 1 job from snapshots still pending or running"]
    subprocess.run(["scancel", slurm_job], check=True, timeout=30)
    refresh_until(common, live=False)
    assert git_checkout(hooked.path, "main").lines == []


def test_one_refresh_at_a_time(repo: Repo) -> None:
    common = repo.path / ".git"
    held = reminders.refresh_lock(common)
    assert held is not None
    try:
        assert reminders.refresh_lock(common) is None
    finally:
        os.close(held)
    again = reminders.refresh_lock(common)
    assert again is not None
    os.close(again)


FOREIGN = '#!/bin/sh\necho "foreign hook ran: $*"\nexit {status}\n'


@pytest.mark.parametrize("status", [0, 3])
def test_a_foreign_hook_runs_first_and_its_status_counts(repo: Repo, status: int) -> None:
    hook = repo.path / ".git" / "hooks" / "post-checkout"
    hook.write_text(FOREIGN.format(status=status))
    hook.chmod(0o755)
    install_hook(repo)
    snapshots(repo, 1)
    age_snapshots(repo, 30)
    seen = git_checkout(repo.path, "-c", "feature")
    assert (seen.returncode != 0) == (status != 0)  # git turns a failed hook into status 1
    foreign = seen.stderr.index("foreign hook ran: ")
    assert foreign < seen.stderr.index("git-slurm: 1 snapshot worktree older than 7d")
    assert repo.git("branch", "--show-current").strip() == "feature"
    head = repo.git("rev-parse", "HEAD").strip()
    direct = subprocess.run([hook, head, head, "1"], cwd=repo.path, capture_output=True)
    assert direct.returncode == status  # the hook's own status is the foreign hook's


def bare_venv(where: Path) -> Path:
    """A real Python environment without git_slurm's dependencies."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    return where / "bin" / "python"


@pytest.mark.parametrize("broken", ["missing interpreter", "no dependencies", "bad config"])
def test_a_broken_environment_costs_one_line_never_the_checkout(
    repo: Repo, tmp_path: Path, broken: str
) -> None:
    checkout = discover(repo.path)
    if broken == "missing interpreter":
        install(checkout, python=str(tmp_path / "gone" / "bin" / "python"))
    elif broken == "no dependencies":
        install(checkout, python=str(bare_venv(tmp_path / "venv")))
    else:
        install(checkout)
        repo.git("config", "slurm.gcOlderThan", "whenever")
    seen = git_checkout(repo.path, "-c", "feature")
    assert seen.returncode == 0
    assert len(seen.lines) == 1 and seen.lines[0].startswith("git-slurm: no reminder: ")
    assert repo.git("branch", "--show-current").strip() == "feature"


def test_git_slurm_own_worktree_add_does_not_fire_the_hook(repo: Repo) -> None:
    log = repo.path.parent / "hook.log"
    hook = repo.path / ".git" / "hooks" / "post-checkout"
    hook.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    hook.chmod(0o755)
    install_hook(repo)
    snapshots(repo, 2)
    assert not log.exists()
    # the same hook does fire for the user's own `git worktree add`
    repo.git("worktree", "add", "-q", str(repo.path.parent / "mine"))
    assert log.read_text().count("\n") == 1


def test_the_repository_is_found_as_git_says_inside_a_hook(hooked: Repo, tmp_path: Path) -> None:
    """From a linked worktree (whose git dir is not the common dir), and from a work tree
    without any `.git` (only the GIT_DIR git exports to the hook leads to the repository)."""
    snapshots(hooked, 1)
    age_snapshots(hooked, 30)
    linked = tmp_path / "linked"
    hooked.git("worktree", "add", "-q", "--detach", str(linked))
    wait_for_refresh(hooked)  # started by that `worktree add`; from here on the size is known
    (line,) = git_checkout(linked, "-c", "side").lines
    assert re.fullmatch(
        rf"git-slurm: 1 snapshot worktree older than 7d holds .*: {GC_COMMAND}", line
    )
    moved = tmp_path / "elsewhere.git"
    (hooked.path / ".git").rename(moved)
    env = {"GIT_DIR": str(moved), "GIT_WORK_TREE": str(hooked.path)}
    seen = git_checkout(hooked.path, "-c", "feature", env=env)
    assert seen.returncode == 0, seen.stderr
    (line,) = seen.lines
    assert line.startswith("git-slurm: 1 snapshot worktree older than 7d")


def test_modules_of_the_work_tree_cannot_shadow_the_hook_s(hooked: Repo) -> None:
    snapshots(hooked, 1)
    age_snapshots(hooked, 30)
    for name in ("json.py", "dataclasses.py", "git_slurm.py"):
        hooked.write(name, "raise SystemExit('shadowed')\n")
    seen = git_checkout(hooked.path, "-c", "feature", env={"PYTHONPATH": str(hooked.path)})
    assert seen.lines == [f"git-slurm: 1 snapshot worktree older than 7d: {GC_COMMAND}"]


def test_the_pre_commit_framework_entry_point(repo: Repo) -> None:
    """pre-commit passes no arguments to a post-checkout hook, only PRE_COMMIT_* variables."""
    snapshots(repo, 1)
    age_snapshots(repo, 30)
    for kind, expected in (("1", 1), ("0", 0)):
        done = subprocess.run(
            [str(Path(sys.executable).parent / "git_slurm_post_checkout")],
            cwd=repo.path,
            capture_output=True,
            text=True,
            env=dict(os.environ, PRE_COMMIT_CHECKOUT_TYPE=kind),
        )
        assert done.returncode == 0 and len(done.stdout.splitlines()) == expected


def test_the_pre_commit_manifest_declares_the_entry_point() -> None:
    import yaml  # type: ignore[import-untyped]

    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "git-slurm-reminders"
    assert hook["stages"] == ["post-checkout"]
    assert hook["language"] == "python"
    assert (Path(sys.executable).parent / hook["entry"]).is_file()  # a script of the package
    assert hook["always_run"] is True and hook["pass_filenames"] is False


def stale(count: int, size: int, unmeasured: int = 0, age: str = "7d") -> reminders.Stale:
    return reminders.Stale(count, size, unmeasured, age)


def reminder(
    stale_: reminders.Stale,
    jobs: int = 0,
    checked: Optional[float] = None,
    branch: Optional[str] = None,
    unknown: int = 0,
) -> reminders.Reminder:
    return reminders.Reminder(stale_, jobs, unknown, checked, branch, 0.0, False)


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (reminder(stale(0, 0)), []),
        (reminder(stale(1, 0, 1)), [f"git-slurm: 1 snapshot worktree older than 7d: {GC_COMMAND}"]),
        (
            reminder(stale(3, 5 * 2**30, 0, "2w")),
            [
                "git-slurm: 3 snapshot worktrees older than 2w hold 5.0 GiB: "
                "git slurm-gc --older-than 2w"
            ],
        ),
        (
            reminder(stale(2, 1536, 1), jobs=2, checked=1000.0 - 300),
            [
                f"git-slurm: 2 snapshot worktrees older than 7d hold over 1.5 KiB: {GC_COMMAND}; "
                "2 jobs from snapshots still pending or running (as of 5 min ago)"
            ],
        ),
        (
            reminder(stale(0, 0), jobs=1, checked=1000.0 - 10, branch="slurm-job-1"),
            [
                "git-slurm: 1 job from snapshots still pending or running",
                "git-slurm: slurm-job-1 is a snapshot branch: commits here change no job (each "
                "job runs its snapshot's worktree); to start work from it: git switch -c "
                "<new-branch>",
            ],
        ),
        (
            reminder(stale(0, 0), jobs=2, unknown=1),
            ["git-slurm: 2 jobs from snapshots still pending or running, 1 more of unknown state"],
        ),
        (
            reminder(stale(0, 0), unknown=3, checked=1000.0 - 7200),
            ["git-slurm: 3 jobs from snapshots of unknown state (as of 2 h ago)"],
        ),
        (
            reminder(stale(1, 0, 1, "2 weeks"), jobs=0),
            [
                "git-slurm: 1 snapshot worktree older than 2 weeks: "
                "git slurm-gc --older-than '2 weeks'"
            ],
        ),
    ],
)
def test_what_the_reminder_says(given: reminders.Reminder, said: list[str]) -> None:
    from git_slurm.cli.post_checkout import describe

    assert describe(given, now=1000.0) == said


def test_a_refresh_that_cannot_start_still_leaves_the_reminder(
    hooked: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a login node out of processes for the user, starting the background refresh fails
    (EAGAIN): the reminder is still said; the refresh waits for the next checkout."""
    from git_slurm.cli import post_checkout

    snapshots(hooked, 2)
    age_snapshots(hooked, 30)

    def no_process_left(*args: object, **kwargs: object) -> None:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(subprocess, "Popen", no_process_left)  # the module calls subprocess.Popen
    monkeypatch.chdir(hooked.path)
    assert post_checkout.remind(["0" * 40, "0" * 40, "1"]) == [
        f"git-slurm: 2 snapshot worktrees older than 7d: {GC_COMMAND}"
    ]
