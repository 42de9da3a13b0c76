"""Helpers for the launcher's end-to-end tests: the test app in a fresh repository, runs of it,
a throwaway virtualenv for editable installs, and polling with a deadline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any, Callable, Optional

from gitrepo import Repo

APP = Path(__file__).resolve().parent / "sweep_app"
POLL_S = 0.05


def make_app_repo(root: Path, sub: str = "exp") -> tuple[Repo, Path]:
    """A repository with the sweep app committed in `root/sub` (the launch directory)."""
    repo = Repo.create(root, commit=False)
    app = root / sub
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("__pycache__", "gitignore"))
    repo.write(".gitignore", (APP / "gitignore").read_text(encoding="utf-8"))
    repo.write("README.md", "# a project with a Hydra app\n")
    repo.commit("the app")
    return repo, app


def wait_until(predicate: Callable[[], bool], what: str, deadline_s: float = 90.0) -> None:
    """Poll `predicate` until it holds; fail with `what` when the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_s} s waiting for {what}")
        time.sleep(POLL_S)


def app_command(python: str, *overrides: str) -> list[str]:
    return [python, "my_app.py", "-m", *overrides]


def run_app(
    app: Path,
    *overrides: str,
    python: str = sys.executable,
    env: Optional[dict[str, str]] = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """Run the app to completion (or, with wait=false, until it has queued its jobs)."""
    return subprocess.run(
        app_command(python, *overrides),
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_app(
    app: Path,
    log: Path,
    *overrides: str,
    python: str = sys.executable,
    env: Optional[dict[str, str]] = None,
) -> subprocess.Popen[bytes]:
    """Start the app in the background, its output in `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            app_command(python, *overrides), cwd=app, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def results(sweep_root: Path) -> list[dict[str, Any]]:
    """Every job's result.json under `sweep_root` (e.g. app/multirun), by output dir."""
    found = sorted(sweep_root.rglob("result.json"))
    return [json.loads(p.read_text(encoding="utf-8")) for p in found]


def make_venv(path: Path) -> str:
    """A virtualenv that sees this test run's packages (git-slurm, hydra, submitit, pip) but
    installs into its own site-packages; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]  # addsitedir: its .pth files (editables) run too
    Path(purelib, "_test_run_packages.pth").write_text(
        f"import site; site.addsitedir({ours!r})\n", encoding="utf-8"
    )
    return str(python)


def pip_install_editable(python: str, *projects: Path, cache: Path) -> None:
    """`pip install -e` the projects into the venv of `python`, as a user would."""
    env = dict(os.environ, PIP_CACHE_DIR=str(cache), PIP_DISABLE_PIP_VERSION_CHECK="1")
    argv = [python, "-m", "pip", "install", "-q", "--no-deps"]
    for project in projects:
        argv += ["-e", str(project)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
