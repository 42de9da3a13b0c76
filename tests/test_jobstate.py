"""`jobstate`: SLURM ids taken apart, local processes, SLURM failures read as "live", and the
real cluster's answers for held, running, finished, array and forgotten jobs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from plumbum import local
from slurm_support import wait_for_job_state

from git_slurm.jobstate import (
    ENDED,
    EXITED,
    UNKNOWN,
    JobStatus,
    SlurmId,
    job_states,
    parse_slurm_id,
    process_start_ticks,
)
from git_slurm.launch import job_ref
from git_slurm.records import JobRef

FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}


def slurm_ref(job_id: str) -> JobRef:
    return JobRef(id=job_id, kind="slurm")


def by_id(refs: list[JobRef], timeout: float = 10.0) -> dict[str, JobStatus]:
    """`job_states` keyed by the bare id (the refs of one test never share one)."""
    return {key[3]: status for key, status in job_states(refs, timeout).items()}


# ---- ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("123", SlurmId("123", None)),
        ("123_4", SlurmId("123", ((4, 4),))),
        ("123_[1,3-5]", SlurmId("123", ((1, 1), (3, 5)))),
        ("123_[5-7%2]", SlurmId("123", ((5, 7),))),
        ("123_[1-999999999]", SlurmId("123", ((1, 999999999),))),
        ("123+1", SlurmId("123", None, "1")),
        ("0", None),  # `squeue -j 0,...` fails for every id in the call
        ("4294967295", None),
        ("abc", None),
        ("123;cluster", None),
        ("", None),
    ],
)
def test_parse_slurm_id(text: str, expected: SlurmId | None) -> None:
    assert parse_slurm_id(text) == expected


def covers(recorded: str, listed: str, raw: str) -> bool:
    a, b = parse_slurm_id(recorded), parse_slurm_id(listed)
    assert a is not None and b is not None
    return a.covers(b, raw)


def test_an_array_task_is_found_in_a_pending_range_and_by_its_raw_id() -> None:
    assert covers("78_3", "78_[1,3-5]", "78")  # sacct: pending tasks as one range record
    assert covers("78_[4-9]", "78_[1,3-5]", "78")
    assert not covers("78_2", "78_[1,3-5]", "78")
    assert not covers("78_[6-9]", "78_[1,3-5]", "78")
    assert covers("78_2", "78_2", "79")
    assert covers("78", "78_2", "79")  # the whole array
    assert covers("79", "78_2", "79")  # a task's own job id
    assert not covers("78", "780", "780")


# ---- local processes ---------------------------------------------------------------------


def test_a_running_local_job_is_live(sleeper: subprocess.Popen[bytes]) -> None:
    ref = job_ref(str(sleeper.pid), "local")
    assert by_id([ref])[ref.id] == JobStatus("RUNNING", True, "process")


def test_a_killed_and_reaped_local_job_has_exited(sleeper: subprocess.Popen[bytes]) -> None:
    ref = job_ref(str(sleeper.pid), "local")
    sleeper.kill()
    sleeper.wait()
    status = by_id([ref])[ref.id]
    assert (status.state, status.live) == (EXITED, False)


def test_a_zombie_has_exited(sleeper: subprocess.Popen[bytes]) -> None:
    ref = job_ref(str(sleeper.pid), "local")
    sleeper.kill()
    # blocks until it has exited, without reaping it: /proc/PID stays, in state Z
    os.waitid(os.P_PID, sleeper.pid, os.WEXITED | os.WNOWAIT)
    assert Path(f"/proc/{sleeper.pid}/stat").read_text().split(") ")[1][0] == "Z"
    assert by_id([ref])[ref.id].live is False


def test_a_reused_process_id_is_not_the_job(sleeper: subprocess.Popen[bytes]) -> None:
    ticks = process_start_ticks(sleeper.pid)
    assert ticks is not None
    # the record of an earlier process with the same id: not this one
    ref = replace(job_ref(str(sleeper.pid), "local"), start_ticks=ticks - 1)
    status = by_id([ref])[ref.id]
    assert (status.state, status.live) == (EXITED, False)
    assert "another process" in status.detail


def test_a_local_job_of_another_host_counts_as_live() -> None:
    ref = JobRef(id=str(os.getpid()), kind="local", host=f"not-{socket.gethostname()}")
    status = by_id([ref])[ref.id]
    assert (status.state, status.live) == (UNKNOWN, True)


def test_a_pid_equal_to_a_slurm_id_keeps_the_live_answer(sleeper: subprocess.Popen[bytes]) -> None:
    """Both kinds in one call, same id: the entry must be live if either job is."""
    refs = [job_ref(str(sleeper.pid), "local"), slurm_ref(str(sleeper.pid))]
    with local.env(PATH=str(Path(sys.executable).parent)):  # no squeue: UNKNOWN, live
        states = job_states(refs)
    assert states[refs[0].key] == JobStatus("RUNNING", True, "process")
    assert states[refs[1].key].state == UNKNOWN


# ---- SLURM clients that fail: everything stays live ---------------------------------------


def fake_client(directory: Path, name: str, script: str) -> None:
    """A stand-in for a SLURM client whose failure a real cluster cannot be made to show."""
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def test_without_squeue_every_slurm_job_is_unknown_and_live(tmp_path: Path) -> None:
    with local.env(PATH=str(tmp_path)):
        states = by_id([slurm_ref("1"), slurm_ref("2_3")])
    assert {s.state for s in states.values()} == {UNKNOWN}
    assert all(s.live and "squeue not found" in s.detail for s in states.values())


def test_a_hanging_squeue_is_cut_off_and_counts_as_live(tmp_path: Path) -> None:
    """Cut off, not waited for: the client never answers (only pytest-timeout would end a
    wait), and when the call returns it has been ended."""
    pids = tmp_path / "pids"
    fake_client(tmp_path / "bin", "squeue", f"echo $$ >> {pids}; exec sleep 3600")
    with local.env(PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}"):
        states = by_id([slurm_ref("1")], timeout=0.5)
    assert states["1"].state == UNKNOWN and states["1"].live
    assert "did not answer" in states["1"].detail
    (pid,) = pids.read_text().split()
    try:  # killed and reaped by the call (or its pid already went to another process)
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        command = b""
    assert command != b"sleep\x003600\x00"


def test_a_failing_squeue_counts_as_live(tmp_path: Path) -> None:
    fake_client(
        tmp_path / "bin",
        "squeue",
        "echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1",
    )
    with local.env(PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}"):
        states = by_id([slurm_ref("1")])
    assert states["1"].live and "Unable to contact" in states["1"].detail


def test_a_batch_squeue_refuses_is_not_read_as_forgotten(tmp_path: Path) -> None:
    """`Invalid job id specified` means "forgotten" only when one id was asked about."""
    fake_client(
        tmp_path / "bin",
        "squeue",
        "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1",
    )
    # accounting without a record of it (the real sacct may know some job 11 of the cluster)
    fake_client(tmp_path / "bin", "sacct", "exit 0")
    with local.env(PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}"):
        states = by_id([slurm_ref("11"), slurm_ref("12")])
        single = by_id([slurm_ref("11")])
    assert all(s.live and s.state == UNKNOWN for s in states.values())
    assert (single["11"].state, single["11"].live) == (ENDED, False)


def test_a_malformed_id_is_never_sent_to_slurm_and_counts_as_live(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    fake_client(tmp_path / "bin", "squeue", f'echo "$@" >> {log}')
    with local.env(PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}"):
        states = by_id([slurm_ref("1;rm -rf /"), slurm_ref("0")])
    assert states["1;rm -rf /"] == JobStatus(UNKNOWN, True, "not a SLURM job id")
    assert states["0"] == JobStatus(UNKNOWN, True, "not a SLURM job id")
    assert not log.exists()


# ---- the real cluster --------------------------------------------------------------------


def slurm(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture
def sbatch(tmp_path: Path) -> Iterator[list[str]]:
    """Submitted job ids; whatever still runs is cancelled at the end."""
    jobs: list[str] = []
    yield jobs
    if jobs:
        subprocess.run(["scancel", *jobs], capture_output=True, timeout=30, check=False)


def submit(jobs: list[str], tmp_path: Path, *args: str) -> str:
    out = slurm("sbatch", "--parsable", f"--chdir={tmp_path}", "--output=/dev/null", *args)
    jobs.append(out.strip().split(";")[0])
    return jobs[-1]


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[Path]:
    """squeue and sacct wrapped so that every call is logged (then run for real)."""
    log = tmp_path / "slurm-calls"
    for name in ("squeue", "sacct"):
        real = subprocess.run(["which", name], capture_output=True, text=True, check=True)
        fake_client(
            tmp_path / "wrap", name, f'echo {name} >> {log}\nexec {real.stdout.strip()} "$@"'
        )
    with local.env(PATH=f"{tmp_path / 'wrap'}:{os.environ['PATH']}"):
        yield log


def calls(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_held_array_and_finished_jobs_in_one_squeue_call(
    tmp_path: Path, sbatch: list[str], counted: Path
) -> None:
    held = submit(sbatch, tmp_path, "--hold", "--wrap", "true")
    array = submit(sbatch, tmp_path, "--hold", "--array=1-4", "--wrap", "true")
    done = submit(sbatch, tmp_path, "--wrap", "true")
    wait_for_job_state(done, FINISHED, 60)
    refs = [slurm_ref(i) for i in (held, f"{array}_3", f"{array}_[1-2]", array, done)]
    states = by_id(refs)
    assert calls(counted) == ["squeue"]  # all in one call; every job was still listed
    assert states[held] == JobStatus("PENDING", True, "squeue")
    assert states[f"{array}_3"].state == "PENDING" and states[array].live
    assert states[f"{array}_[1-2]"].live
    assert states[done] == JobStatus("COMPLETED", False, "squeue")


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_a_partly_released_array_is_live_until_every_task_ends(
    tmp_path: Path, sbatch: list[str]
) -> None:
    array = submit(sbatch, tmp_path, "--hold", "--array=1-3", "--wrap", "true")
    slurm("scontrol", "release", f"{array}_2")
    wait_for_job_state(f"{array}_2", FINISHED, 60)
    states = by_id([slurm_ref(f"{array}_2"), slurm_ref(f"{array}_1"), slurm_ref(array)])
    assert states[f"{array}_2"].live is False
    assert states[f"{array}_1"].live and states[array].live
    slurm("scancel", array)
    wait_for_job_state(f"{array}_1", {"CANCELLED"}, 60)
    assert by_id([slurm_ref(array)])[array].live is False


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_a_job_slurmctld_has_forgotten_has_ended(counted: Path) -> None:
    """squeue answers but does not list it: sacct is asked once, and it has ended either way."""
    states = by_id([slurm_ref("987654321"), slurm_ref("987654322_1")])
    assert calls(counted) == ["squeue", "sacct"]
    assert {s.state for s in states.values()} == {ENDED}
    assert not any(s.live for s in states.values())
