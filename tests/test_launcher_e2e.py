"""End to end with the real launcher on submitit_local: jobs that are still queued when the user
edits the checkout run the code and config of their launch, from the snapshot worktree, and
write everything into the original checkout, where it outlives the worktree.

A job is "queued" the way a SLURM job sits in the queue: a setup line holds it before its Python
starts (local jobs otherwise start at once), until the test has edited the checkout. The same
run with the snapshot off is the control: it must see every edit.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from gitrepo import Repo, git
from launcher_apps.support import (
    make_app_repo,
    make_venv,
    pip_install_editable,
    results,
    run_app,
    start_app,
    wait_until,
)

EDITS = {  # relative to the app dir; the test writes them while the jobs are queued
    "helper.py": 'VERSION = "new"\n',  # imported while a job unpickles its task
    "late.py": 'VERSION = "new"\n',  # imported by the task, found via the launch directory
    "lib/pp_mod.py": 'VERSION = "new"\n',  # found via PYTHONPATH (an entry into the checkout)
    "pkgs/srcpkg/src/spkg/__init__.py": 'VERSION = "new"\n',  # editable: static .pth
    "pkgs/flatpkg/fpkg/__init__.py": 'VERSION = "new"\n',  # editable: meta-path finder
}
MODULES = ["helper", "late", "pp_mod", "spkg", "fpkg"]
SNAPSHOT = ["hydra.launcher.snapshot.enabled=true", "hydra.launcher.snapshot.push_to_remote=false"]


@pytest.fixture(scope="session")
def pip_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pip-cache")


@pytest.fixture
def editable_app(tmp_path: Path, pip_cache: Path) -> tuple[Repo, Path, str]:
    """The test app in a repository, and a venv with two of its packages installed editable
    (setuptools' static .pth and its import-hook finder)."""
    repo, app = make_app_repo(tmp_path / "project")
    python = make_venv(tmp_path / "venv")
    pip_install_editable(python, app / "pkgs/srcpkg", app / "pkgs/flatpkg", cache=pip_cache)
    return repo, app, python


def queue_line(tmp_path: Path) -> tuple[str, Path, Path]:
    """(override adding a setup line that holds each job before its Python starts, marker
    dir where each held job leaves `queued-<job id>`, file that lets them go)."""
    markers = tmp_path / "markers"
    markers.mkdir()
    go = markers / "go"
    script = tmp_path / "queue.sh"
    script.write_text(
        f'touch "{markers}/queued-$PPID"\n'  # $PPID: the job's shell, whose pid is the job id
        "i=0\n"
        f'while [ ! -e "{go}" ]; do i=$((i+1)); [ "$i" -gt 2400 ] && exit 1; sleep 0.05; done\n',
        encoding="utf-8",
    )
    return f"+hydra.launcher.setup=['sh {script}']", markers, go


def edit_checkout(app: Path) -> None:
    for rel, text in EDITS.items():
        (app / rel).write_text(text, encoding="utf-8")
    config = app / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("value: old", "value: new"), encoding="utf-8")


def edit_once_both_wait(
    app: Path,
    proc: subprocess.Popen[bytes],
    markers: Path,
    go: Path,
    log: Path,
    edit: Optional[Callable[[Path], None]] = None,
    waiting: str = "queued",
    timeout: float = 180,
) -> None:
    """Once both jobs of the launch wait (queued, or held by SLURM; their `<waiting>-N`
    markers), edit the checkout (with `edit`, by default `edit_checkout`), release them, and
    see the launch succeed within `timeout`; never leave the launch running."""
    try:
        wait_until(
            lambda: len(list(markers.glob(f"{waiting}-*"))) == 2 or proc.poll() is not None,
            "both jobs to wait",
        )
        (edit or edit_checkout)(app)
        go.touch()
        assert proc.wait(timeout=timeout) == 0, log.read_text()
    finally:
        go.touch()
        if proc.poll() is None:
            proc.kill()


def launch_held_sweep(
    tmp_path: Path, app: Path, python: str, snapshot: bool
) -> tuple[list[dict[str, Any]], set[str]]:
    """Launch two jobs, edit the checkout while they are held, release them; return their
    results and the job ids they were queued under."""
    hold, markers, go = queue_line(tmp_path)
    flags = SNAPSHOT if snapshot else []
    env = dict(os.environ, PYTHONPATH=str(app / "lib"))
    log = tmp_path / "launch.log"
    proc = start_app(
        app,
        log,
        "seed=0,1",
        "hydra/launcher=submitit_local",
        *flags,
        "modules=[late,pp_mod,spkg,fpkg]",
        hold,
        python=python,
        env=env,
    )
    edit_once_both_wait(app, proc, markers, go, log)
    queued = {p.name.removeprefix("queued-") for p in markers.glob("queued-*")}
    return results(app / "multirun"), queued


def snapshot_of(result: dict[str, Any]) -> dict[str, Any]:
    record = Path(result["output_dir"], ".hydra", "snapshot.json")
    data: dict[str, Any] = json.loads(record.read_text(encoding="utf-8"))
    return data


def worktree_record(repo: Path, worktree: str) -> dict[str, Any]:
    admin = (Path(worktree) / ".git").read_text().split("gitdir: ", 1)[1].strip()
    data: dict[str, Any] = json.loads((Path(admin) / "git-slurm.json").read_text())
    return data


def assert_ran_snapshot(result: dict[str, Any], app: Path, snap: dict[str, Any]) -> None:
    worktree, workdir = snap["worktree"], snap["workdir"]
    assert workdir == os.path.join(worktree, "exp")  # the launch dir's place in the snapshot
    assert result["value"] == "old"
    for name in MODULES:
        module = result["modules"][name]
        assert module["version"] == "old", name
        assert module["file"].startswith(workdir + os.sep), (name, module["file"])
    assert result["cwd"] == workdir
    assert result["original_cwd"] == result["runtime_cwd"] == str(app)
    assert result["output_dir"].startswith(str(app / "multirun") + os.sep)
    assert result["commit_env"] == snap["commit"]


def test_queued_jobs_run_the_code_and_config_of_their_launch(
    tmp_path: Path, editable_app: tuple[Repo, Path, str]
) -> None:
    repo, app, python = editable_app

    got, queued = launch_held_sweep(tmp_path, app, python, snapshot=True)

    assert len(got) == 2
    snap = snapshot_of(got[0])
    assert snapshot_of(got[1]) == snap
    assert snap["branch"].startswith("slurm-job-")
    assert repo.git("branch", "--list", "slurm-job-*").split() == [snap["branch"]]
    for result in got:
        assert_ran_snapshot(result, app, snap)
    jobs = worktree_record(repo.path, snap["worktree"])["jobs"]
    assert {job["id"] for job in jobs} == queued
    assert all(job["kind"] == "local" and isinstance(job["start_ticks"], int) for job in jobs)

    # the worktree goes (as `git slurm-gc` would remove it); everything the jobs wrote stays
    repo.git("worktree", "unlock", snap["worktree"])
    repo.git("worktree", "remove", "--force", "--force", snap["worktree"])
    assert not Path(snap["worktree"]).exists()
    assert results(app / "multirun") == got
    assert sorted(p.name for p in (app / "outputs").iterdir()) == [
        "from-job-0.txt",
        "from-job-1.txt",
    ]
    logs = sorted((app / "multirun").rglob(".submitit/*/*_0_log.out"))
    assert len(logs) == 2
    assert all("Job completed successfully" in p.read_text() for p in logs)


def test_control_without_snapshot_the_same_jobs_see_every_edit(
    tmp_path: Path, editable_app: tuple[Repo, Path, str]
) -> None:
    """Proves the test above can fail: upstream's behaviour, which the snapshot fixes."""
    _, app, python = editable_app

    got, _ = launch_held_sweep(tmp_path, app, python, snapshot=False)

    assert len(got) == 2
    for result in got:
        assert result["value"] == "new"
        assert {name: result["modules"][name]["version"] for name in MODULES} == dict.fromkeys(
            MODULES, "new"
        )
        assert result["cwd"] == str(app)
        assert not (Path(result["output_dir"]) / ".hydra" / "snapshot.json").exists()


@pytest.mark.parametrize("snapshot", [True, False], ids=["snapshot", "no-snapshot"])
def test_wait_false_returns_once_queued_and_says_where(tmp_path: Path, snapshot: bool) -> None:
    repo, app = make_app_repo(tmp_path / "project")
    hold, markers, go = queue_line(tmp_path)
    try:
        done = run_app(
            app,
            "seed=0,1,2",
            "hydra/launcher=submitit_local",
            *(SNAPSHOT if snapshot else []),
            "hydra.launcher.wait=false",
            hold,
            timeout=60,
        )
        # returned (its output pipes closed too) while all jobs are still held
        assert done.returncode == 0, done.stderr
        assert not list((app / "multirun").rglob("result.json"))
    finally:
        go.touch()
    out = done.stdout + done.stderr
    assert "3 job(s) queued; not waiting for them" in out
    wait_until(lambda: len(results(app / "multirun")) == 3, "the released jobs to finish")
    # read once every job has run: a job's marker is written when its shell starts, which
    # on a loaded machine can be after the launch has returned
    queued = sorted(p.name.removeprefix("queued-") for p in markers.glob("queued-*"))
    assert len(queued) == 3, queued
    for num, job_id in enumerate(sorted(queued, key=lambda j: out.index(f"job {j}:"))):
        assert f"#{num} job {job_id}: outputs {app}/multirun/" in out
    if snapshot:
        snap = snapshot_of(results(app / "multirun")[0])
        recorded = worktree_record(repo.path, snap["worktree"])["jobs"]
        assert {job["id"] for job in recorded} == set(queued)


def test_a_requeued_job_still_runs_the_snapshot(tmp_path: Path) -> None:
    _, app = make_app_repo(tmp_path / "project")
    markers, release = tmp_path / "markers", tmp_path / "release"
    markers.mkdir()
    log = tmp_path / "launch.log"
    proc = start_app(
        app,
        log,
        "seed=0",
        "hydra/launcher=submitit_local",
        *SNAPSHOT,
        f"markers={markers}",
        f"release={release}",
    )
    try:
        wait_until(lambda: len(list(markers.glob("started-*"))) == 1, "the job to start")
        first = next(markers.glob("started-*"))
        (app / "helper.py").write_text('VERSION = "new"\n', encoding="utf-8")
        # preemption: submitit checkpoints through the launcher's checkpoint() and requeues
        os.kill(int(first.stem.rsplit("-", 1)[1]), signal.SIGUSR2)
        wait_until(lambda: len(list(markers.glob("started-*"))) == 2, "the requeued job")
        release.touch()
        assert proc.wait(timeout=120) == 0, log.read_text()
    finally:
        release.touch()
        if proc.poll() is None:
            proc.kill()
    runs = [json.loads(p.read_text()) for p in markers.glob("started-*")]
    snap = snapshot_of(results(app / "multirun")[0])
    assert [run["cwd"] for run in runs] == [snap["workdir"]] * 2
    assert [run["version"] for run in runs] == ["old", "old"]
    assert all(run["helper"].startswith(snap["workdir"]) for run in runs)


def test_outside_a_repository_no_job_is_submitted(tmp_path: Path) -> None:
    _, app = make_app_repo(tmp_path / "project")
    plain = tmp_path / "plain"  # the same app, in a directory that no repository contains
    shutil.copytree(app, plain)
    done = run_app(plain, "seed=0,1", "hydra/launcher=submitit_local", *SNAPSHOT)
    assert done.returncode != 0
    first = done.stderr.strip().splitlines()[0]
    assert (
        first == f"git-slurm: no job submitted, the snapshot failed: not a git repository: {plain}"
    )
    assert "Traceback" not in done.stderr
    assert not list(plain.rglob(".submitit"))


def test_a_failed_snapshot_submits_nothing(tmp_path: Path) -> None:
    repo, app = make_app_repo(tmp_path / "project")
    done = run_app(
        app,
        "seed=0",
        "hydra/launcher=submitit_local",
        *SNAPSHOT,
        "hydra.launcher.snapshot.branch_prefix='bad..prefix'",
    )
    assert done.returncode != 0
    assert done.stderr.startswith(
        "git-slurm: no job submitted, the snapshot failed: invalid branch prefix 'bad..prefix'"
    )
    assert not list(app.rglob(".submitit/*"))
    assert repo.git("branch", "--list", "*prefix*") == ""


def test_snapshot_off_outside_a_repository_runs_as_upstream(tmp_path: Path) -> None:
    _, app = make_app_repo(tmp_path / "project")
    plain = tmp_path / "plain"
    shutil.copytree(app, plain)
    done = run_app(plain, "seed=0,1", "hydra/launcher=submitit_local")
    assert done.returncode == 0, done.stderr
    got = results(plain / "multirun")
    assert [r["cwd"] for r in got] == [str(plain)] * 2
    # no snapshot, no warning: only the waiting launch's progress lines name git-slurm
    said = [ln for ln in (done.stdout + done.stderr).splitlines() if "git-slurm" in ln]
    assert not [ln for ln in said if "snapshot" in ln or "warning" in ln.lower()], said


def test_one_snapshot_per_launch_pushed_and_logged(tmp_path: Path) -> None:
    repo, app = make_app_repo(tmp_path / "project")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    repo.git("remote", "add", "origin", str(remote))
    (app / "late.py").write_text('VERSION = "uncommitted"\n', encoding="utf-8")
    done = run_app(
        app, "seed=0,1,2", "hydra/launcher=submitit_local", "hydra.launcher.snapshot.enabled=true"
    )
    assert done.returncode == 0, done.stderr
    branches = repo.git("branch", "--list", "slurm-job-*").split()
    assert len(branches) == 1
    assert git(remote, "branch", "--list", "slurm-job-*").split() == branches
    got = results(app / "multirun")
    assert len(got) == 3
    assert {snapshot_of(r)["branch"] for r in got} == set(branches)
    assert {r["modules"]["late"]["version"] for r in got} == {"uncommitted"}
    commit = repo.git("rev-parse", branches[0]).strip()
    summary = [ln for ln in done.stdout.splitlines() if "git-slurm: snapshot " in ln]
    assert len(summary) == 1
    assert (
        f"snapshot {branches[0]} at {commit[:12]} (dirty: uncommitted changes included), "
        f"new worktree " in summary[0]
    )
    assert ", pushed to origin, took " in summary[0]


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_slurm_jobs_held_in_the_queue_run_the_snapshot(tmp_path: Path) -> None:
    """The same on submitit_slurm: the hold runs in the sbatch script, after git-slurm's lines."""
    repo, app = make_app_repo(tmp_path / "project")
    hold, markers, go = queue_line(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(app / "lib"))
    log = tmp_path / "launch.log"
    proc = start_app(
        app,
        log,
        "seed=0,1",
        "hydra/launcher=submitit_slurm",
        *SNAPSHOT,
        "hydra.launcher.timeout_min=5",
        "modules=[late,pp_mod]",
        hold,
        env=env,
    )
    edit_once_both_wait(app, proc, markers, go, log)
    got = results(app / "multirun")
    assert len(got) == 2
    snap = snapshot_of(got[0])
    for result in got:
        assert result["value"] == "old"
        for name in ("helper", "late", "pp_mod"):
            assert result["modules"][name]["version"] == "old", name
            assert result["modules"][name]["file"].startswith(snap["workdir"] + os.sep)
        assert result["cwd"] == snap["workdir"]
        assert result["original_cwd"] == str(app)
    jobs = worktree_record(repo.path, snap["worktree"])["jobs"]
    assert [job["kind"] for job in jobs] == ["slurm", "slurm"]
    array = {job["id"].split("_")[0] for job in jobs}
    assert len(array) == 1 and sorted(job["id"] for job in jobs) == [
        f"{next(iter(array))}_0",
        f"{next(iter(array))}_1",
    ]
