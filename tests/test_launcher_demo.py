"""`make demo` (the README's first command) works, and shows what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_jobs_run_the_launch_time_code(tmp_path: Path) -> None:
    # as `make demo` runs it: the venv's python, the venv's bin dir not on PATH
    env = dict(os.environ, TMPDIR=str(tmp_path), PATH="/usr/local/bin:/usr/bin:/bin")
    done = subprocess.run(
        [sys.executable, "examples/demo.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ran = [ln for ln in done.stdout.splitlines() if " scored " in ln]
    assert len(ran) == 3
    assert all("lr=0.1: model v1 from " in ln and "/slurm-snapshots/" in ln for ln in ran)
    assert 'model.py: VERSION = "v2"' in done.stdout  # the checkout was edited meanwhile
    assert "3 job(s) queued; not waiting for them" in done.stdout
    assert "slurm-job-" in done.stdout.split("== The snapshot branch")[1]
