"""`make demo`: a Hydra sweep whose queued jobs keep running the code they were launched with.

It copies examples/app into a throwaway git repository, launches a 3-job sweep on
`submitit_local` with `hydra.launcher.snapshot.enabled=true` and `hydra.launcher.wait=false`,
edits the model and the config while the jobs are still queued, lets them run, and shows that
every job ran the launch-time code from the snapshot worktree, while its outputs landed in the
original checkout.

Local jobs start at once; to show the point of the snapshot, the demo holds each job in a
pretend queue (a setup line that waits for a file before the job's Python starts), just as a
SLURM job waits in the queue for hours.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP = Path(__file__).resolve().parent / "app"
JOBS = 3
DEADLINE_S = 180.0


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(argv: list[str], cwd: Path, show: bool = True) -> str:
    """Run a command the way a user would type it; show its output; stop the demo on failure."""
    if show:
        print(f"$ {shlex.join(argv)}", flush=True)
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    output = (done.stdout + done.stderr).rstrip()
    if show and output:
        print(output, flush=True)
    if done.returncode != 0:
        sys.exit(f"demo: `{shlex.join(argv)}` failed (exit {done.returncode})")
    return done.stdout


def git(cwd: Path, *args: str, show: bool = True) -> str:
    # the demo's own commits never run the user's global hooks
    return run(["git", "-c", "core.hooksPath=/dev/null", *args], cwd, show=show)


def make_project(root: Path) -> Path:
    """examples/app as a fresh repository with one commit."""
    project = root / "project"
    shutil.copytree(APP, project, ignore=shutil.ignore_patterns("__pycache__", "gitignore"))
    (project / ".gitignore").write_text((APP / "gitignore").read_text(encoding="utf-8"))
    git(project, "init", "-q", show=False)
    git(project, "config", "user.name", "git-slurm demo", show=False)
    git(project, "config", "user.email", "demo@example.invalid", show=False)
    git(project, "add", "-A", show=False)
    git(project, "commit", "-q", "-m", "a small Hydra app", show=False)
    return project


def launch(project: Path, release: Path) -> None:
    # the pretend queue gives up after 10 minutes, should the demo die before releasing it
    hold = f"for i in $(seq 3000); do [ -e {release} ] && break; sleep 0.2; done"
    run(
        [
            sys.executable,
            "train.py",
            "-m",
            "seed=1,2,3",
            "hydra.launcher.wait=false",
            f'+hydra.launcher.setup=["{hold}"]',
        ],
        project,
    )


def edit(project: Path) -> None:
    model = project / "model.py"
    model.write_text(model.read_text().replace('VERSION = "v1"', 'VERSION = "v2"'))
    config = project / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("lr: 0.1", "lr: 0.5"))
    git(project, "diff", "--stat")


def version_line(project: Path) -> str:
    text = (project / "model.py").read_text()
    return next(ln for ln in text.splitlines() if ln.startswith("VERSION"))


def job_logs(project: Path) -> list[Path]:
    return sorted(project.glob("multirun/*/*/*/train.log"))


def wait_for_jobs(project: Path) -> list[Path]:
    """Poll until every job has logged its result (or give up after DEADLINE_S)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        logs = job_logs(project)
        if len(logs) == JOBS and all("scored" in p.read_text() for p in logs):
            return logs
        if time.monotonic() > deadline:
            sys.exit(f"demo: the jobs did not finish within {DEADLINE_S:.0f} s; see {project}")
        time.sleep(0.2)


def report(project: Path, logs: list[Path]) -> None:
    for log in logs:
        ran = next(ln for ln in log.read_text().splitlines() if "scored" in ln)
        print(f"{log.parent.relative_to(project)}: {ran.split(' - ', 1)[1]}")
    snapshot = json.loads((logs[0].parent / ".hydra" / "snapshot.json").read_text())
    print(f"\nEach job's .hydra/snapshot.json records what it ran, e.g. {logs[0].parent.name}:")
    print(json.dumps(snapshot, indent=2))


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="git-slurm-demo-"))
    project = make_project(root)
    release = root / "release-the-queue"
    say(f"A Hydra app in a fresh git repository: {project}")
    print(f"model.py: {version_line(project)}")

    say(f"Launch a {JOBS}-job sweep; the snapshot is on, and wait=false returns once queued")
    try:
        launch(project, release)

        say("The jobs are still queued. Edit the model (v1 -> v2) and the config (lr 0.1 -> 0.5)")
        edit(project)
        print(f"model.py: {version_line(project)}")

        say("Release the queue; every job runs the code and config of its launch")
    finally:
        release.touch()  # also when the demo is interrupted: no job waits forever
    report(project, wait_for_jobs(project))

    say("The snapshot branch, and the worktree the jobs ran in")
    git(project, "branch", "--list", "slurm-job-*")
    git(project, "worktree", "list")
    say(f"Outputs are in the original checkout: {project / 'multirun'}")
    print(f"Look around in {root}; remove it with: rm -rf {root}")


if __name__ == "__main__":
    main()
