"""The test cluster (tests/slurm/cluster.sh) behaves like the SLURM that git-slurm relies on.

These tests talk to a real cluster. They never sleep to synchronise: they poll the job state
through squeue/sacct with a deadline.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
import submitit
from slurm_support import POLL_INTERVAL, job_state, wait_for_job_state, wait_for_sacct

from git_slurm.jobstate import FINAL_STATES

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

#: Generous: a job takes about 1 s here, but the first one after slurmctld starts waits for
#: its first scheduling pass, and CI machines are slow.
TIMEOUT = 60.0
#: States a job does not leave: the same list git-slurm's gc relies on.
FINISHED = FINAL_STATES

Sbatch = Callable[..., str]


def slurm(*args: str) -> str:
    """Run a SLURM client command that must succeed; return its stdout."""
    proc = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, f"{' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


@pytest.fixture
def sbatch(tmp_path: Path) -> Iterator[Sbatch]:
    """Submit batch jobs from tmp_path (so no slurm-N.out lands in the repository); cancel the
    ones still queued or running when the test ends, so a failed test leaves no jobs behind."""
    submitted: list[str] = []

    def submit(*args: str) -> str:
        out = slurm("sbatch", "--parsable", f"--chdir={tmp_path}", "--output=slurm-%j.out", *args)
        job_id = out.strip().split(";")[0]  # --parsable prints "id" or "id;cluster"
        submitted.append(job_id)
        return job_id

    yield submit
    unfinished = [job for job in submitted if job_state(job) not in FINISHED]
    if unfinished:
        slurm("scancel", *unfinished)


def pending_reason(job_id: str) -> str:
    return slurm("squeue", "-h", "-j", job_id, "-o", "%r").strip()


def test_job_completes_and_sacct_reports_exit_0(sbatch: Sbatch) -> None:
    job = sbatch("--wrap", "true")
    assert wait_for_job_state(job, FINISHED, TIMEOUT) == "COMPLETED"
    assert wait_for_sacct(job, FINISHED, TIMEOUT) == ("COMPLETED", "0:0")


def test_failing_job_reports_its_exit_code(sbatch: Sbatch) -> None:
    job = sbatch("--wrap", "exit 3")
    assert wait_for_sacct(job, FINISHED, TIMEOUT) == ("FAILED", "3:0")


def test_held_job_stays_pending_until_released(sbatch: Sbatch) -> None:
    held = sbatch("--hold", "--wrap", "true")
    assert wait_for_job_state(held, {"PENDING"}, TIMEOUT) == "PENDING"
    # A job submitted after the held one runs to the end: the scheduler has had its chances to
    # start the held job as well, and must have left it alone.
    later = sbatch("--wrap", "true")
    assert wait_for_job_state(later, FINISHED, TIMEOUT) == "COMPLETED"
    assert job_state(held) == "PENDING"
    assert pending_reason(held) == "JobHeldUser"

    slurm("scontrol", "release", held)
    assert wait_for_job_state(held, FINISHED, TIMEOUT) == "COMPLETED"


def test_scancel_gives_cancelled(sbatch: Sbatch) -> None:
    job = sbatch("--wrap", "sleep 300")
    wait_for_job_state(job, {"RUNNING"}, TIMEOUT)
    slurm("scancel", job)
    assert wait_for_job_state(job, FINISHED, TIMEOUT) == "CANCELLED"
    state, _ = wait_for_sacct(job, FINISHED, TIMEOUT)
    assert state == "CANCELLED"


def test_array_job_tasks_and_whole_array(sbatch: Sbatch) -> None:
    array = sbatch("--array=0-3%2", "--wrap", "true")
    assert wait_for_job_state(f"{array}_3", FINISHED, TIMEOUT) == "COMPLETED"
    assert wait_for_job_state(array, FINISHED, TIMEOUT) == "COMPLETED"
    assert wait_for_sacct(array, FINISHED, TIMEOUT) == ("COMPLETED", "0:0")


def wait_until_done(job: submitit.Job[Any], timeout: float = TIMEOUT) -> None:
    """``job.result()`` blocks without a deadline; poll ``done()`` (result file, then sacct)."""
    deadline = time.monotonic() + timeout
    while not job.done(force_check=True):
        if time.monotonic() >= deadline:
            pytest.fail(
                f"submitit job {job.job_id} not done after {timeout:g} s, "
                f"state {job_state(job.job_id)!r}"
            )
        time.sleep(POLL_INTERVAL)


def submitit_executor(folder: Path) -> submitit.AutoExecutor:
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    executor.update_parameters(timeout_min=5)
    return executor


def test_submitit_runs_a_function_and_returns_its_result(tmp_path: Path) -> None:
    # os.getenv is pickled by reference, so it runs inside the job and sees the job's environment
    job = submitit_executor(tmp_path).submit(os.getenv, "SLURM_JOB_ID")
    wait_until_done(job)
    assert job.result() == job.job_id
    # submitit reads states from sacct only: it must see the job finish
    assert wait_for_sacct(job.job_id, FINISHED, TIMEOUT) == ("COMPLETED", "0:0")
    assert job.get_info(mode="force")["State"] == "COMPLETED"


def test_submitit_sees_a_cancelled_job_as_done(tmp_path: Path) -> None:
    # No result file is ever written, so only sacct can tell submitit that the job is over;
    # without accounting, job.done() stays False and job.result() hangs.
    job = submitit_executor(tmp_path).submit(time.sleep, 300)
    wait_for_job_state(job.job_id, {"RUNNING"}, TIMEOUT)
    job.cancel(check=True)
    wait_until_done(job)
    assert job.state.startswith("CANCELLED")  # submitit shows sacct's "CANCELLED by 0"
    # Not calling job.result() here: once done() is True it raises UncompletedJobError, but only
    # after submitit has waited 15 s (_results_timeout_s) for a late result file.
