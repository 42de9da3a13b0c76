"""The multirun's snapshot starts when Hydra sets the launcher up, before its sweeper composes
the jobs' configs, and runs while it does (a fresh checkout leaves the critical path).

The promise: the snapshot is the tree as it was when the launcher was set up; an edit made
after that (while the sweeper works) reaches no job. A snapshot no launch takes (the sweeper
fails, is interrupted, launches nothing) is undone: no branch here or on the remote, no
worktree, and a reused worktree keeps only its earlier launch. The sweeper between setup and
the first launch is `hydra/sweeper=editing` (tests/launcher_apps/editing_sweeper): Hydra's
basic sweeper that first edits the checkout, holds, or fails, as the test asks.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any, Optional

import pytest
from gitrepo import Repo, git
from launcher_apps.support import make_app_repo, results, run_app, start_app, wait_until
from silentserver import SilentServer
from test_launcher_e2e import SNAPSHOT, snapshot_of, worktree_record
from test_launcher_env import processes_working_in
from test_processes import alive

from git_slurm import launch
from git_slurm.launch import SnapshotSettings, start_launch_snapshot

PLUGIN = Path(__file__).resolve().parent / "launcher_apps" / "editing_sweeper"
LOCAL = "hydra/launcher=submitit_local"
EDITING = "hydra/sweeper=editing"


def plugin_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(PLUGIN))


def edits_file(tmp_path: Path, app: Path) -> str:
    """The code and YAML edits the sweeper makes after setup, as its `edits` file."""
    config = (app / "conf" / "config.yaml").read_text(encoding="utf-8")
    edits = {
        "helper.py": 'VERSION = "new"\n',  # imported while a job unpickles its task
        "late.py": 'VERSION = "new"\n',  # imported by the task
        "conf/config.yaml": config.replace("value: old", "value: new"),
    }
    path = tmp_path / "edits.json"
    path.write_text(json.dumps(edits), encoding="utf-8")
    return f"+hydra.sweeper.edits={path}"


def snapshot_branches(repo: Path) -> list[str]:
    return git(repo, "branch", "--list", "slurm-job-*").split()


def worktrees(repo: Path) -> list[str]:
    listed = git(repo, "worktree", "list", "--porcelain").splitlines()
    return [ln.removeprefix("worktree ") for ln in listed if ln.startswith("worktree ")][1:]


def assert_nothing_left(repo: Repo, remote: Optional[Path] = None) -> None:
    assert snapshot_branches(repo.path) == []
    assert worktrees(repo.path) == []
    assert list((repo.path / ".git" / "slurm-snapshots").glob("*")) == []
    if remote is not None:
        assert git(remote, "branch", "--list", "slurm-job-*") == ""


def assert_ran_old(repo: Repo, got: list[dict[str, Any]]) -> None:
    assert len(got) == 2
    (branch,) = snapshot_branches(repo.path)
    for result in got:
        assert snapshot_of(result)["branch"] == branch
        assert result["value"] == "old", result
        modules = result["modules"]
        assert modules["helper"]["version"] == modules["late"]["version"] == "old", modules


def test_an_edit_after_setup_reaches_no_job(tmp_path: Path) -> None:
    repo, app = make_app_repo(tmp_path / "project")
    edit = edits_file(tmp_path, app)
    done = run_app(app, "seed=0,1", EDITING, edit, LOCAL, *SNAPSHOT, env=plugin_env())
    assert done.returncode == 0, done.stderr
    assert (app / "late.py").read_text() == 'VERSION = "new"\n'  # the sweeper did edit
    assert_ran_old(repo, results(app / "multirun"))


def test_control_without_snapshot_the_jobs_see_the_edit(tmp_path: Path) -> None:
    _, app = make_app_repo(tmp_path / "project")
    done = run_app(app, "seed=0,1", EDITING, edits_file(tmp_path, app), LOCAL, env=plugin_env())
    assert done.returncode == 0, done.stderr
    assert {r["value"] for r in results(app / "multirun")} == {"new"}


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_slurm_an_edit_after_setup_reaches_no_job(tmp_path: Path) -> None:
    repo, app = make_app_repo(tmp_path / "project")
    edit = edits_file(tmp_path, app)
    slurm = ["hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=5"]
    done = run_app(app, "seed=0,1", EDITING, edit, *slurm, *SNAPSHOT, env=plugin_env())
    assert done.returncode == 0, done.stderr
    assert_ran_old(repo, results(app / "multirun"))


def with_remote(tmp_path: Path, repo: Repo) -> Path:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    repo.git("remote", "add", "origin", str(remote))
    return remote


@pytest.mark.parametrize(
    "how",
    [
        ["+hydra.sweeper.fail=true"],  # the sweeper fails after setup
        ["seed=range(0)"],  # a sweep of no job: Hydra's launch([]) fails (as upstream)
    ],
    ids=["sweeper-fails", "no-job"],
)
def test_a_snapshot_no_launch_takes_is_undone(tmp_path: Path, how: list[str]) -> None:
    repo, app = make_app_repo(tmp_path / "project")
    remote = with_remote(tmp_path, repo)  # pushed: undone there too
    (app / "late.py").write_text('VERSION = "uncommitted"\n', encoding="utf-8")  # a new commit
    done = run_app(
        app, EDITING, *how, LOCAL, "hydra.launcher.snapshot.enabled=true", env=plugin_env()
    )
    assert done.returncode != 0
    assert not list(app.rglob(".submitit/*"))
    assert_nothing_left(repo, remote)


def test_a_reused_worktree_keeps_only_its_earlier_launch(tmp_path: Path) -> None:
    repo, app = make_app_repo(tmp_path / "project")
    first = run_app(app, "seed=0", LOCAL, *SNAPSHOT)
    assert first.returncode == 0, first.stderr
    (branch,) = snapshot_branches(repo.path)
    (worktree,) = worktrees(repo.path)
    before = worktree_record(repo.path, worktree)
    done = run_app(app, EDITING, "+hydra.sweeper.fail=true", LOCAL, *SNAPSHOT, env=plugin_env())
    assert done.returncode != 0
    assert snapshot_branches(repo.path) == [branch]
    assert worktrees(repo.path) == [worktree]
    after = worktree_record(repo.path, worktree)
    assert [x["branch"] for x in after["launches"]] == [branch]
    assert after["jobs"] == before["jobs"] and len(after["jobs"]) == 1


def test_ctrl_c_before_the_first_launch_leaves_nothing(tmp_path: Path) -> None:
    repo, app = make_app_repo(tmp_path / "project")
    hold = tmp_path / "hold"
    hold.mkdir()
    log = tmp_path / "launch.log"
    over = ["seed=0,1", EDITING, f"+hydra.sweeper.hold={hold}", LOCAL, *SNAPSHOT]
    proc = start_app(app, log, *over, env=plugin_env())
    try:
        wait_until(lambda: (hold / "sweeping").exists() or proc.poll() is not None, "setup")
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends the launch (not its snapshot's group)
        assert proc.wait(timeout=120) != 0
    finally:
        (hold / "release").touch()
        if proc.poll() is None:
            proc.kill()
    assert not list(app.rglob(".submitit/*"))
    assert_nothing_left(repo)


def stopped_snapshots() -> list[int]:
    """Processes of `git slurm-snapshot --captured-fd` that are stopped (state T)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if b"--captured-fd" in cmdline and stat[stat.rindex(")") + 2] == "T":
            found.append(int(proc.name))
    return found


def test_ctrl_c_while_setup_waits_for_the_capture_leaves_nothing(tmp_path: Path) -> None:
    """Ctrl-C reaches the launch while its snapshot (in a session of its own, so the terminal's
    SIGINT does not reach it) is still capturing: setup ends it, and nothing is left, also
    once the snapshot could have gone on (it is held stopped at its capture here)."""
    repo, app = make_app_repo(tmp_path / "project")
    log = tmp_path / "launch.log"
    env = dict(plugin_env(), GIT_SLURM_TEST_FAULT="capture:STOP")
    proc = start_app(app, log, "seed=0,1", LOCAL, *SNAPSHOT, env=env)
    held: list[int] = []
    try:
        wait_until(lambda: bool(stopped_snapshots()) or proc.poll() is not None, "capture")
        held = stopped_snapshots()
        assert held and proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) != 0
    finally:
        for pid in held:  # a snapshot the launch left behind goes on and makes its branch
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
        wait_until(lambda: not any(map(alive, held)), "its end")
    assert not list(app.rglob(".submitit/*"))
    assert_nothing_left(repo)


def test_a_snapshot_error_is_said_before_the_sweep(tmp_path: Path) -> None:
    repo, app = make_app_repo(tmp_path / "project")
    bad = "hydra.launcher.snapshot.branch_prefix='bad..prefix'"
    done = run_app(app, "seed=0,1", LOCAL, *SNAPSHOT, bad)
    assert done.returncode != 0
    assert done.stderr.splitlines()[0].startswith(
        "git-slurm: no job submitted, the snapshot failed: invalid branch prefix 'bad..prefix'"
    )
    assert "Traceback" not in done.stderr
    assert not (app / "multirun").exists()  # the sweeper never started (it saves multirun.yaml)
    assert snapshot_branches(repo.path) == []


def test_the_snapshot_says_captured_on_the_descriptor_it_is_given(tmp_path: Path) -> None:
    """`git slurm-snapshot --captured-fd FD` (run through git, as the launcher does) writes
    `captured` there: the launcher's setup waits for that, not for the checkout."""
    repo, _ = make_app_repo(tmp_path / "project")
    read, write = os.pipe()
    proc = subprocess.Popen(
        ["git", "slurm-snapshot", "--json", "--no-push", "--captured-fd", str(write)],
        cwd=repo.path,
        pass_fds=(write,),
        stdout=subprocess.PIPE,
        text=True,
    )
    os.close(write)
    with os.fdopen(read, "rb") as said:
        assert said.read() == b"captured\n"  # read to EOF: once git's copy is closed too
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert json.loads(out)["branch"] in snapshot_branches(repo.path)


def test_a_snapshot_still_running_when_abandoned_undoes_itself(
    repo: Repo, silent_server: SilentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot that does not finish in FINISH_WAIT (its push hangs) is asked to end, and
    undoes its branch itself; nothing it started lives on."""
    repo.git("remote", "add", "origin", silent_server.url)  # its push never ends by itself
    repo.git("config", "slurm.pushTimeout", "10m")
    monkeypatch.setattr(launch, "FINISH_WAIT", 0.5)
    pending = start_launch_snapshot(SnapshotSettings(), repo.path)
    assert pending.wait_captured()
    wait_until(lambda: snapshot_branches(repo.path) != [], "the branch (the push comes next)")
    pending.abandon()
    assert snapshot_branches(repo.path) == []
    assert worktrees(repo.path) == []
    assert processes_working_in(repo.path.resolve()) == []
