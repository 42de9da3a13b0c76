"""`git slurm-gc` against the real SLURM cluster (tests/slurm/cluster.sh): a pending job keeps
its worktree whatever the age; once the job has ended, the worktree goes. SLURM is asked with
one squeue call (and at most one sacct call) per gc run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gitrepo import Repo, run_tool
from slurm_support import wait_for_job_state
from test_processes import alive

from git_slurm.records import JobRef, add_jobs

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

TIMEOUT = 60.0


def slurm(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture
def jobs() -> Iterator[list[str]]:
    """Ids of submitted jobs; any still queued at the end is cancelled."""
    submitted: list[str] = []
    yield submitted
    if submitted:
        subprocess.run(["scancel", *submitted], capture_output=True, timeout=30, check=False)


@pytest.fixture
def call_log(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A PATH on which squeue and sacct log each call, then run the real client."""
    wrap, log = tmp_path / "wrap", tmp_path / "slurm-calls"
    wrap.mkdir()
    for name in ("squeue", "sacct"):
        real = subprocess.run(["which", name], capture_output=True, text=True, check=True)
        script = wrap / name
        script.write_text(f'#!/bin/sh\necho {name} >> {log}\nexec {real.stdout.strip()} "$@"\n')
        script.chmod(0o755)
    yield log, {"PATH": f"{wrap}{os.pathsep}{os.environ['PATH']}"}


def gc(repo: Repo, env: dict[str, str]) -> dict[str, Any]:
    res = run_tool("slurm-gc", "--json", "--older-than", "0m", cwd=repo.path, env=env)
    assert res.returncode == 0, res.stderr
    (only,) = res.json()["worktrees"]
    return dict(only)


def test_a_held_job_keeps_its_worktree_until_it_has_ended(
    repo: Repo, tmp_path: Path, jobs: list[str], call_log: tuple[Path, dict[str, str]]
) -> None:
    log, env = call_log
    worktree = Path(repo.snapshot_json()["worktree"])
    out = slurm("sbatch", "--parsable", "--hold", f"--chdir={tmp_path}", "--wrap", "true")
    job = out.strip().split(";")[0]
    jobs.append(job)
    add_jobs(worktree, [JobRef(id=job, kind="slurm")])

    kept = gc(repo, env)
    assert (kept["action"], kept["detail"]) == ("kept", f"live job {job} PENDING")
    assert worktree.is_dir()
    assert log.read_text().split() == ["squeue"]

    slurm("scontrol", "release", job)
    assert wait_for_job_state(job, {"COMPLETED"}, TIMEOUT) == "COMPLETED"
    removed = gc(repo, env)
    assert (removed["action"], removed["jobs"][0]["state"]) == ("removed", "COMPLETED")
    assert not worktree.exists()
    assert log.read_text().split() == ["squeue", "squeue"]  # still listed: no sacct needed


# ---- answers that cannot lie by omission -------------------------------------------------


def held_job(tmp_path: Path, jobs: list[str], *args: str) -> str:
    out = slurm("sbatch", "--parsable", "--hold", f"--chdir={tmp_path}", *args, "--wrap", "true")
    jobs.append(out.strip().split(";")[0])
    return jobs[-1]


@pytest.mark.parametrize(
    "hiding",
    [
        {"SQUEUE_PARTITION": "nosuch"},
        {"SQUEUE_ACCOUNT": "nosuch"},
        {"SQUEUE_NAMES": "nosuch"},
        {"SQUEUE_QOS": "nosuch"},
        {"SQUEUE_USERS": "nobody", "SACCT_STATE": "COMPLETED"},
    ],
    ids=lambda env: ",".join(env),
)
@pytest.mark.parametrize("force", [False, True], ids=["", "force"])
def test_a_filter_in_the_environment_never_hides_a_live_job(
    repo: Repo, tmp_path: Path, jobs: list[str], hiding: dict[str, str], force: bool
) -> None:
    worktree = Path(repo.snapshot_json()["worktree"])
    job = held_job(tmp_path, jobs)
    add_jobs(worktree, [JobRef(id=job, kind="slurm")])
    extra = ["--force"] if force else []
    res = run_tool("slurm-gc", "--json", "--older-than", "0m", *extra, cwd=repo.path, env=hiding)
    assert res.returncode == 0, res.stderr
    (only,) = res.json()["worktrees"]
    assert (only["action"], only["detail"]) == ("kept", f"live job {job} PENDING")
    assert worktree.is_dir()


def wrapper(directory: Path, name: str, body: str) -> None:
    """A site's wrapper script for a SLURM client (many clusters put such in PATH)."""
    directory.mkdir(exist_ok=True)
    real = subprocess.run(["which", name], capture_output=True, text=True, check=True)
    script = directory / name
    script.write_text(f"#!/bin/sh\n{body.replace('REAL', real.stdout.strip())}\n")
    script.chmod(0o755)


def test_a_wrapper_whose_helper_holds_the_pipe_is_answered_and_cleaned_up(
    repo: Repo, tmp_path: Path, jobs: list[str]
) -> None:
    """The wrapper answers, but leaves a helper behind that keeps stdout open for minutes: gc
    reads the answer (not a timeout's UNKNOWN) and the helper does not outlive the call."""
    pids = tmp_path / "helpers"
    for name in ("squeue", "sacct"):
        wrapper(tmp_path / "wrap", name, f'sleep 600 &\necho $! >> {pids}\nREAL "$@"')
    worktree = Path(repo.snapshot_json()["worktree"])
    job = held_job(tmp_path, jobs)
    add_jobs(worktree, [JobRef(id=job, kind="slurm")])
    env = {"PATH": f"{tmp_path / 'wrap'}{os.pathsep}{os.environ['PATH']}"}
    res = run_tool("slurm-gc", "--json", "--older-than", "0m", cwd=repo.path, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    (only,) = res.json()["worktrees"]
    assert (only["action"], only["jobs"][0]["state"], only["jobs"][0]["detail"]) == (
        "kept",
        "PENDING",
        "squeue",
    )
    helpers = [int(pid) for pid in pids.read_text().split()]
    assert helpers and not any(alive(pid) for pid in helpers)


def test_a_job_on_a_named_cluster_is_asked_there(
    repo: Repo, tmp_path: Path, jobs: list[str], call_log: tuple[Path, dict[str, str]]
) -> None:
    """`sbatch -M <cluster>` ids (`id;cluster`) are recorded with their cluster and asked on it,
    whatever SLURM_CLUSTERS says at gc time."""
    from git_slurm.launch import job_ref

    _, env = call_log
    cluster = slurm("scontrol", "show", "config").split("ClusterName")[1].split()[1]
    worktree = Path(repo.snapshot_json()["worktree"])
    out = slurm(
        "sbatch", "--parsable", "-M", cluster, "--hold", f"--chdir={tmp_path}", "--wrap", "true"
    )
    ref = job_ref(out.strip(), "slurm")
    jobs.append(ref.id)
    assert (ref.id, ref.cluster) == (out.strip().split(";")[0], cluster)
    add_jobs(worktree, [ref])
    kept = gc(repo, {**env, "SLURM_CLUSTERS": "nosuch"})
    assert (kept["action"], kept["jobs"][0]["state"]) == ("kept", "PENDING")
    assert kept["jobs"][0]["cluster"] == cluster


# ---- SLURM as a second source of truth ---------------------------------------------------


@pytest.mark.parametrize("where", [".", "pkg"], ids=["top", "below"])
def test_a_job_submitted_by_hand_into_a_worktree_keeps_it(
    repo: Repo, jobs: list[str], where: str
) -> None:
    """`sbatch --chdir <worktree>` by hand records nothing: SLURM's list of the user's jobs
    keeps the worktree anyway (also with --force), until the job has ended."""
    repo.write("pkg/mod.py", "X = 1\n")
    worktree = Path(repo.snapshot_json()["worktree"])
    job = held_job(worktree / where, jobs)
    for force in ([], ["--force"]):
        res = run_tool("slurm-gc", "--json", "--older-than", "0m", *force, cwd=repo.path)
        assert res.returncode == 0, res.stderr
        (only,) = res.json()["worktrees"]
        assert (only["action"], only["reason"]) == ("kept", "live-job"), only
        assert str(worktree / where).rstrip("/.") in only["detail"]
    slurm("scancel", job)
    wait_for_job_state(job, {"CANCELLED"}, TIMEOUT)
    removed = gc(repo, {})
    assert removed["action"] == "removed" and not worktree.exists()


def test_what_a_real_job_wrote_keeps_its_worktree_and_its_bytecode_does_not(
    repo: Repo, jobs: list[str]
) -> None:
    """A real SLURM job imports the snapshot's code (Python writes `__pycache__/`) and writes
    a result: only the result is job data."""
    repo.write("pkg/__init__.py", "")
    repo.write("pkg/mod.py", "X = 1\n")
    worktree = Path(repo.snapshot_json()["worktree"])
    script = "import pathlib, pkg.mod; pathlib.Path('result.txt').write_text('42')"
    out = slurm(
        "sbatch", "--parsable", f"--chdir={worktree}", "--output=/dev/null",
        "--export=ALL,PYTHONDONTWRITEBYTECODE=,PYTHONPYCACHEPREFIX=",
        "--wrap", f"{sys.executable} -c \"{script}\"",
    )  # fmt: skip
    job = out.strip().split(";")[0]
    jobs.append(job)
    add_jobs(worktree, [JobRef(id=job, kind="slurm")])
    assert wait_for_job_state(job, {"COMPLETED"}, TIMEOUT) == "COMPLETED"
    assert list((worktree / "pkg" / "__pycache__").glob("*.pyc"))

    kept = gc(repo, {})
    assert (kept["reason"], kept["job_files"]) == ("job-files", ["result.txt"])
    (worktree / "result.txt").unlink()
    assert gc(repo, {})["action"] == "removed" and not worktree.exists()
