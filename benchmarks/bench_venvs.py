"""The venvs slurm_launch.py launches from: upstream's launcher and git-slurm's, the same pins.

Both get hydra-core 1.3.2 and submitit 1.5.4 (pinned exactly, so pip never takes a Hydra 1.4
pre-release), so that a difference between them is the launcher's and not Hydra's. The upstream
venv adds hydra-submitit-launcher 1.2.0; the git-slurm venv adds git-slurm's dependencies at the
versions this interpreter has, and no git-slurm: each launch puts a copy of the code under test
first on PYTHONPATH (see `code_copy`: the HEAD commit of a checkout), so one venv serves every
branch compared, and the checkouts compared are only read. Each venv has launch_marks.py and
a `.pth` line that imports it.

Venvs are kept under .bench-venvs/ in this checkout (git-ignored) and rebuilt when their pins
or the hook change.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Callable

CHECKOUT = Path(__file__).resolve().parent.parent
VENVS = CHECKOUT / ".bench-venvs"
HOOK = Path(__file__).resolve().parent / "launch_marks.py"
HYDRA = ["hydra-core==1.3.2", "submitit==1.5.4"]
UPSTREAM = ["hydra-submitit-launcher==1.2.0", *HYDRA]


def git_slurm_requirements() -> list[str]:
    return [*HYDRA, f"pygit2=={version('pygit2')}", f"plumbum=={version('plumbum')}"]


def venv(name: str, requirements: list[str], say: Callable[[str], None], hook: bool = True) -> Path:
    """The python of venv `name` with `requirements` (and the hook), built when missing or stale."""
    home = VENVS / name
    python = home / "bin" / "python"
    key = hashlib.sha256(
        "\n".join([sys.version, *requirements, HOOK.read_text() if hook else ""]).encode()
    ).hexdigest()
    stamp = home / ".bench-stamp"
    if stamp.exists() and stamp.read_text() == key and python.exists():
        return python
    say(f"building {home}: {' '.join(requirements)}")
    shutil.rmtree(home, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True)
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
         "--no-input", *requirements],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if pip.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(requirements)} failed: {pip.stderr[-2000:]}")
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    if hook:
        shutil.copy(HOOK, site / "gs_bench_launch_marks.py")
        (site / "gs_bench_launch_marks.pth").write_text("import gs_bench_launch_marks\n")
    stamp.write_text(key)
    return python


def code_copy(source: Path, label: str) -> Path:
    """git_slurm/ and hydra_plugins/ of `source`'s HEAD commit, for PYTHONPATH (`git archive`:
    the checkout is only read, and what is measured is a commit, whatever is being edited)."""
    target = VENVS / "code" / label
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(source), "archive", "--format=tar", "HEAD", "git_slurm", "hydra_plugins"],
        capture_output=True, check=True,
    )  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def code_label(source: Path) -> str:
    """`<dir name>@<short commit>`."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(source), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    return f"{source.name}@{git('rev-parse', '--short', 'HEAD')}"
