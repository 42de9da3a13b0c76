"""A launch that waits says which jobs it queued (ids, logs), how far they are while it waits
(a status line on a terminal, log lines otherwise), and at the end which failed, with logs.
Real launches: submitit_local, and one on the SLURM cluster."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from launcher_apps.support import app_command, make_app_repo, run_app
from terminal import on_a_terminal
from test_launcher_slurm import SLURM, cancel_named, unique_name

# job 0 succeeds, job 1's task raises (it imports a module that is not there)
ONE_FAILS = ["modules=[late],[no_such_module]", "hydra/launcher=submitit_local"]
QUEUED = re.compile(r"\t#(\d) job (\S+): log (\S+_log\.err)$", re.M)


def test_a_waiting_launch_names_its_jobs_and_its_failures(tmp_path: Path) -> None:
    _, app = make_app_repo(tmp_path / "project")
    done = run_app(app, *ONE_FAILS)
    assert done.returncode == 1  # Hydra reports job 1's exception, as upstream
    out = done.stdout
    assert "git-slurm: 2 job(s) queued; waiting for them (hydra.launcher.wait=true)" in out
    queued = QUEUED.findall(out)
    assert [num for num, _, _ in queued] == ["0", "1"]
    assert all(Path(log).parent.is_dir() for _, _, log in queued)
    assert re.search(r"git-slurm: waiting for 2 jobs: \d pending, \d running, \d done", out)
    _, failed_id, failed_log = queued[1]
    tail = out[out.index("git-slurm: 1 of 2 job(s) failed:") :].splitlines()
    assert tail[1].endswith(
        f"\t#1 job {failed_id}: ModuleNotFoundError: No module named 'no_such_module' "
        f"(log {failed_log})"
    )
    assert "\r" not in done.stdout + done.stderr  # no status line where no terminal is


def test_on_a_terminal_the_launch_keeps_one_status_line(tmp_path: Path) -> None:
    _, app = make_app_repo(tmp_path / "project")
    rc, _, said = on_a_terminal(app_command(sys.executable, *ONE_FAILS), app, {"TERM": "xterm"})
    assert rc == 1
    lines = re.findall(r"\r\x1b\[Kgit-slurm: ([^\r\n]*)", said)
    assert lines, said
    assert lines[-1] == "2 jobs: 0 pending, 0 running, 2 done (1 failed)"
    assert said[said.index(lines[-1]) + len(lines[-1]) :].startswith("\r\n")  # then a new line


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_a_waiting_slurm_launch_reports_its_array(tmp_path: Path) -> None:
    _, app = make_app_repo(tmp_path / "project")
    name = unique_name("progress")
    try:
        done = run_app(app, "seed=0,1", *SLURM, f"hydra.launcher.name={name}", "modules=[]")
    finally:
        cancel_named(name)
    assert done.returncode == 0, done.stderr[-3000:]
    queued = QUEUED.findall(done.stdout)
    assert [num for num, _, _ in queued] == ["0", "1"]
    array = queued[0][1].split("_")[0]
    assert [job for _, job, _ in queued] == [f"{array}_0", f"{array}_1"]
    assert re.search(r"git-slurm: waiting for 2 jobs: \d pending, \d running, 0 done", done.stdout)
    assert "git-slurm: all 2 job(s) done" in done.stdout
