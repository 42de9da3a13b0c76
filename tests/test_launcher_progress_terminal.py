"""The waiting launch's status line on terminals that are not the usual one: TERM=dumb (no
escape sequences, as git's progress), and a Ctrl-C while it waits (the line is ended before
Hydra says anything else). Real launches on submitit_local, stderr on a real pseudo-terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

from launcher_apps.support import app_command, make_app_repo, run_app
from terminal import on_a_terminal
from test_launcher_progress import ONE_FAILS

STATUS = "git-slurm: 1 job: "


def test_a_dumb_terminal_gets_the_status_line_without_escapes(tmp_path: Path) -> None:
    _, app = make_app_repo(tmp_path / "project")
    rc, _, said = on_a_terminal(app_command(sys.executable, *ONE_FAILS), app, {"TERM": "dumb"})
    assert rc == 1
    assert "\x1b" not in said, repr(said[-2000:])
    lines = re.findall(r"\rgit-slurm: ([^\r\n]*)", said)
    assert lines and lines[-1].rstrip() == "2 jobs: 0 pending, 0 running, 2 done (1 failed)"


def test_ctrl_c_while_waiting_ends_the_status_line(tmp_path: Path) -> None:
    """The job waits for a file that appears only after the interrupt."""
    _, app = make_app_repo(tmp_path / "project")
    release = tmp_path / "release"
    argv = app_command(
        sys.executable, "hydra/launcher=submitit_local", f"release={release}", "modules=[]"
    )
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        argv, cwd=app, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal
    )
    os.close(terminal)
    shown = b""
    interrupted = False
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], 120)
            assert ready, f"no output within 120 s: {shown[-2000:]!r}"
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: no writer left
                break
            if not chunk:
                break
            shown += chunk
            if not interrupted and STATUS.encode() in shown:
                proc.send_signal(signal.SIGINT)  # what Ctrl-C sends the launching process
                interrupted = True
                proc.wait(timeout=60)  # the launch ends; the job keeps the terminal open
                release.touch()  # the job, left running as upstream leaves it, ends
    finally:
        release.touch()  # the job, left running as upstream leaves it, ends
        os.close(controller)
        assert proc.stdout is not None
        proc.stdout.close()
        rc = proc.wait(timeout=60)
    said = shown.decode()
    assert interrupted and rc != 0
    last = said[said.rindex(STATUS) :]
    ended = re.match(r"git-slurm: 1 job: \d pending, \d running, \d done *\r\n", last)
    assert ended, repr(last[:300])


FAILED_LINE = re.compile(r"\t#0 job \S+: (.*) \(log \S+_log\.err\)$", re.M)


def failure_said(tmp_path: Path, module: str, text: str, *overrides: str) -> str:
    """The reason the end-of-launch report gives for job 0, whose task imports `module`."""
    repo, app = make_app_repo(tmp_path / "project")
    (app / f"{module}.py").write_text(text)
    repo.commit(f"{module}, which fails in the job")
    done = run_app(app, f"modules=[{module}]", "hydra/launcher=submitit_local", *overrides)
    assert done.returncode == 1, done.stderr[-2000:]
    said = FAILED_LINE.findall(done.stdout)
    assert len(said) == 1, done.stdout[-2000:]
    return str(said[0])


def test_a_job_that_dies_without_a_result_is_reported_as_such(tmp_path: Path) -> None:
    """No exception to name: submitit's own words, not the last line of the job's log."""
    said = failure_said(tmp_path, "dies", "import os\nVERSION = 'x'\nos._exit(3)\n")
    assert said == "UncompletedJobError: has not produced any output (state: FINISHED)", said


def test_a_job_that_fails_outside_its_task_names_the_exception(tmp_path: Path) -> None:
    """The job's code, not Hydra's task, raises (here while the job unpickles its function,
    which imports the app's `helper`): submitit's FailedJobError carries the traceback between
    dashed lines, then where its logs are; the reason is the traceback's last line."""
    repo, app = make_app_repo(tmp_path / "project")
    (app / "helper.py").write_text(
        "import os\nVERSION = 'old'\nif os.environ.get('SUBMITIT_EXECUTOR'):\n"
        "    try:\n        raise KeyError('root cause')\n    except KeyError as exc:\n"
        "        raise RuntimeError('helper refuses in a job') from exc\n"
    )
    repo.commit("a helper that fails in a job")
    done = run_app(app, "modules=[late]", "hydra/launcher=submitit_local")
    assert done.returncode == 1, done.stderr[-2000:]
    said = FAILED_LINE.findall(done.stdout)
    assert said == ["FailedJobError: RuntimeError: helper refuses in a job"], done.stdout[-3000:]


def test_with_stderr_closed_the_launch_still_reports_in_its_log(tmp_path: Path) -> None:
    """`2>&-` (a daemon, some schedulers): Python's sys.stderr is None. No status line is
    possible, the log lines are (Hydra logs to stdout too)."""
    _, app = make_app_repo(tmp_path / "project")
    argv = app_command(sys.executable, "hydra/launcher=submitit_local", "modules=[]")
    done = subprocess.run(
        ["sh", "-c", 'exec 2>&- "$@"', "sh", *argv],
        cwd=app,
        stdout=subprocess.PIPE,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert "cannot follow" not in done.stdout, done.stdout[-2000:]
    assert "git-slurm: waiting for 1 job: " in done.stdout
    assert "git-slurm: all 1 job(s) done" in done.stdout
