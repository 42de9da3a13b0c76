"""End to end on a real SLURM cluster (tests/slurm/cluster.sh): the launcher with
`hydra/launcher=submitit_slurm` and the snapshot on, for a large array, a cancelled job and a
launch that does not wait. Every wait is a poll with a deadline; jobs a test leaves behind are
cancelled."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from launcher_apps.support import make_app_repo, results, run_app, start_app, wait_until
from slurm_support import CALL_TIMEOUT, job_state, wait_for_job_state
from test_launcher_e2e import SNAPSHOT, snapshot_of, worktree_record

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

SLURM = ["hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=5"]


def unique_name(what: str) -> str:
    """A job name no other job on the cluster has, to find this test's jobs by."""
    return f"gs-{what}-{uuid.uuid4().hex[:10]}"


def job_ids_named(name: str) -> list[str]:
    """Ids (``12_3``) of the array tasks named `name` that slurmctld knows, one per task."""
    done = subprocess.run(
        ["squeue", "-h", "-r", "-t", "all", "-n", name, "-o", "%i"],
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT,
        check=True,
    )
    return done.stdout.split()


def cancel_named(name: str) -> None:
    """Cleanup: cancel whatever is left of this test's jobs."""
    subprocess.run(["scancel", "-n", name], capture_output=True, timeout=CALL_TIMEOUT, check=False)


@dataclass(frozen=True)
class RunningJob:
    app: Path
    launch: subprocess.Popen[bytes]  # the Hydra command, waiting for its job
    id: str
    markers: Path  # where each run of the job leaves `started-<n>`
    release: Path  # the job finishes once this file exists
    log: Path  # the launch's output


@contextmanager
def one_running_job(tmp_path: Path, what: str, *launcher: str) -> Iterator[RunningJob]:
    """One job of the test app, launched on SLURM with the snapshot on, once it runs (it then
    waits for `release`); afterwards the launch ends and the job is cancelled, whatever
    happened."""
    _, app = make_app_repo(tmp_path / "project")
    markers, release = tmp_path / "markers", tmp_path / "release"
    markers.mkdir()
    name = unique_name(what)
    log = tmp_path / "launch.log"
    proc = start_app(
        app,
        log,
        "seed=0",
        *launcher,
        *SNAPSHOT,
        f"hydra.launcher.name={name}",
        f"markers={markers}",
        f"release={release}",
    )
    try:
        wait_until(
            lambda: any(markers.glob("started-*")) or proc.poll() is not None,
            "the job to start",
            deadline_s=120,
        )
        assert proc.poll() is None, log.read_text()
        (job_id,) = job_ids_named(name)
        yield RunningJob(app, proc, job_id, markers, release, log)
    finally:
        release.touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        cancel_named(name)


def test_a_100_job_sweep_is_one_throttled_array_with_one_snapshot(tmp_path: Path) -> None:
    repo, app = make_app_repo(tmp_path / "project")
    name = unique_name("array")
    started = time.monotonic()
    try:
        done = run_app(
            app,
            f"seed=range(0,{100})",
            *SLURM,
            *SNAPSHOT,
            "hydra.launcher.array_parallelism=4",
            "hydra.launcher.cpus_per_task=1",
            f"hydra.launcher.name={name}",
            "modules=[]",
            timeout=480,
        )
    finally:
        cancel_named(name)
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"100-job array took {time.monotonic() - started:.1f} s")

    branches = repo.git("branch", "--list", "slurm-job-*").split()
    assert len(branches) == 1
    assert repo.git("worktree", "list").count("slurm-job-") == 1
    got = results(app / "multirun")
    assert len(got) == 100
    assert {snapshot_of(r)["branch"] for r in got} == set(branches)
    assert all(r["original_cwd"] == str(app) for r in got)
    assert all(r["output_dir"].startswith(str(app / "multirun") + "/") for r in got)
    outputs = sorted(p.name for p in (app / "outputs").iterdir())
    assert outputs == sorted(f"from-job-{n}.txt" for n in range(100))

    jobs = worktree_record(repo.path, snapshot_of(got[0])["worktree"])["jobs"]
    arrays = {job["id"].split("_")[0] for job in jobs}
    assert len(arrays) == 1
    (array,) = arrays
    assert sorted(job["id"] for job in jobs) == sorted(f"{array}_{n}" for n in range(100))
    assert {job["kind"] for job in jobs} == {"slurm"}
    # one sbatch for all: its script asks for 100 tasks, at most 4 at a time
    scripts = list((app / "multirun").rglob(".submitit/*/*submission.sh"))
    assert scripts
    assert all("#SBATCH --array=0-99%4\n" in p.read_text() for p in scripts)
    assert all("#SBATCH --cpus-per-task=1\n" in p.read_text() for p in scripts)


def test_a_job_cancelled_while_running_fails_the_launch_in_bounded_time(tmp_path: Path) -> None:
    with one_running_job(tmp_path, "cancel", *SLURM) as job:  # never released
        assert job_state(job.id) == "RUNNING"
        subprocess.run(["scancel", job.id], check=True, timeout=CALL_TIMEOUT)
        cancelled_at = time.monotonic()
        try:
            status = job.launch.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the launch still runs 120 s after scancel:\n{job.log.read_text()}")
        print(f"launch ended {time.monotonic() - cancelled_at:.1f} s after scancel")
    out = job.log.read_text()
    assert status != 0, out
    assert job.id in out, out
    assert "CANCELLED" in out, out
    assert not results(job.app / "multirun")


def test_wait_false_returns_while_the_jobs_are_pending_then_they_finish(tmp_path: Path) -> None:
    repo, app = make_app_repo(tmp_path / "project")
    name = unique_name("nowait")
    try:
        done = run_app(
            app,
            "seed=0,1,2",
            *SLURM,
            *SNAPSHOT,
            "hydra.launcher.wait=false",
            "+hydra.launcher.additional_parameters.hold=true",
            f"hydra.launcher.name={name}",
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        ids = sorted(job_ids_named(name))
        assert len(ids) == 3
        # the command has returned and every job is still held in the queue
        assert [job_state(j) for j in ids] == ["PENDING"] * 3
        out = done.stdout + done.stderr
        assert "3 job(s) queued; not waiting for them" in out
        for job_id in ids:
            assert f"job {job_id}: outputs {app}/multirun/" in out
        assert not results(app / "multirun")

        array = ids[0].split("_")[0]
        subprocess.run(["scontrol", "release", array], check=True, timeout=CALL_TIMEOUT)
        for job_id in ids:
            assert wait_for_job_state(job_id, {"COMPLETED", "FAILED", "CANCELLED"}, 180) == (
                "COMPLETED"
            ), job_id
    finally:
        cancel_named(name)
    wait_until(lambda: len(results(app / "multirun")) == 3, "the results of the released jobs")
    got = results(app / "multirun")
    snap = snapshot_of(got[0])
    assert all(snapshot_of(r) == snap for r in got)
    assert all(r["cwd"] == snap["workdir"] and r["original_cwd"] == str(app) for r in got)
    assert sorted(p.name for p in (app / "outputs").iterdir()) == [
        f"from-job-{n}.txt" for n in range(3)
    ]
    assert sorted(j["id"] for j in worktree_record(repo.path, snap["worktree"])["jobs"]) == ids


def test_a_job_requeued_by_its_preemption_signal_runs_the_snapshot_again(tmp_path: Path) -> None:
    """submitit's preemption signal (USR2) makes the job checkpoint and `scontrol requeue`
    itself; the requeued run starts from the snapshot too, not from the edited checkout."""
    # submitit takes a signal within 10 min of the time limit for a timeout, not a preemption
    limit = "hydra.launcher.timeout_min=60"
    with one_running_job(tmp_path, "requeue", "hydra/launcher=submitit_slurm", limit) as job:
        (job.app / "helper.py").write_text('VERSION = "new"\n', encoding="utf-8")
        subprocess.run(["scancel", "--signal=USR2", job.id], check=True, timeout=CALL_TIMEOUT)
        # slurmctld lets a requeued batch job start again only after its credentials expire
        # (BeginTime = requeue + ~2 min); starting it sooner by hand makes it fail at once
        wait_until(
            lambda: len(list(job.markers.glob("started-*"))) == 2 or job.launch.poll() is not None,
            "the requeued job to start",
            deadline_s=300,
        )
        job.release.touch()
        assert job.launch.wait(timeout=120) == 0, job.log.read_text()
    runs = [json.loads(p.read_text()) for p in job.markers.glob("started-*")]
    got = results(job.app / "multirun")
    assert len(got) == 1
    snap = snapshot_of(got[0])
    assert [run["cwd"] for run in runs] == [snap["workdir"]] * 2
    assert [run["version"] for run in runs] == ["old", "old"]
    assert all(run["helper"].startswith(snap["workdir"] + "/") for run in runs)
    assert got[0]["modules"]["helper"]["version"] == "old"
    assert sacct_requeued(job.id)


def sacct_requeued(job_id: str) -> bool:
    """Whether the accounting database saw the job requeued (a REQUEUED record)."""
    done = subprocess.run(
        ["sacct", "-n", "-P", "-D", "-X", "-j", job_id, "-o", "State"],
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT,
        check=True,
    )
    return "REQUEUED" in done.stdout


def cluster_name() -> str:
    config = subprocess.run(
        ["scontrol", "show", "config"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    return config.split("ClusterName")[1].split()[1]


@pytest.mark.parametrize("how", ["additional_parameters", "SLURM_CLUSTERS"])
def test_jobs_submitted_to_a_named_cluster_are_recorded_with_it(tmp_path: Path, how: str) -> None:
    """`sbatch -M X` answers "... on cluster X" and submitit keeps only the id: the launch
    records X with every job, so gc asks X about them whatever its own environment says."""
    repo, app = make_app_repo(tmp_path / "project")
    cluster, name = cluster_name(), unique_name("cluster")
    env = dict(os.environ)
    env.pop("SLURM_CLUSTERS", None)
    where: list[str] = []
    if how == "SLURM_CLUSTERS":
        env["SLURM_CLUSTERS"] = cluster
    else:
        where = [f"+hydra.launcher.additional_parameters.clusters={cluster}"]
    try:
        done = run_app(
            app,
            "seed=0,1",
            *SLURM,
            *SNAPSHOT,
            *where,
            "hydra.launcher.wait=false",
            "+hydra.launcher.additional_parameters.hold=true",
            f"hydra.launcher.name={name}",
            env=env,
        )
        assert done.returncode == 0, done.stderr
        (worktree,) = (repo.path / ".git" / "slurm-snapshots").iterdir()
        jobs = worktree_record(repo.path, str(worktree))["jobs"]
        assert sorted(job["id"] for job in jobs) == sorted(job_ids_named(name))
        assert [job["cluster"] for job in jobs] == [cluster, cluster]
        env["SLURM_CLUSTERS"] = "nosuch"  # gc asks the recorded cluster, not this one
        gc = subprocess.run(
            ["git", "slurm-gc", "--json", "--older-than", "0m"],
            cwd=repo.path, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert gc.returncode == 0, gc.stderr
        (kept,) = json.loads(gc.stdout)["worktrees"]
        assert kept["action"] == "kept"
        assert {(j["state"], j["cluster"]) for j in kept["jobs"]} == {("PENDING", cluster)}
    finally:
        cancel_named(name)
