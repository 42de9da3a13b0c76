"""The plugin as Hydra finds it: a cheap plugin scan, and a clear winner (with a message) when
hydra-submitit-launcher is installed beside it, whatever order Hydra scans the two in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from launcher_apps.support import make_app_repo, make_venv

HEAVY = ("submitit", "pygit2", "plumbum", "git_slurm", "cloudpickle")
FAKE_UPSTREAM_CONFIG = """\
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore


@dataclass
class FakeConf:
    _target_: str = "fake.upstream.Launcher"


for name in ("submitit_local", "submitit_slurm"):
    ConfigStore.instance().store(group="hydra/launcher", name=name, node=FakeConf)
"""
MESSAGE = (
    "git-slurm: hydra-submitit-launcher is installed too; hydra/launcher=submitit_local and "
    "submitit_slurm use git-slurm's drop-in launcher (same settings, plus `snapshot` and "
    "`wait`). To silence this: pip uninstall hydra-submitit-launcher"
)


def test_plugin_scan_imports_neither_submitit_nor_git_work() -> None:
    code = (
        "import sys\n"
        "from hydra.core.plugins import Plugins\n"
        "from hydra.plugins.launcher import Launcher\n"
        "found = [c.__name__ for c in Plugins.instance().discover(Launcher)]\n"
        "assert 'SlurmLauncher' in found and 'LocalLauncher' in found, found\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def fake_upstream(root: Path) -> Path:
    """A stand-in for hydra-submitit-launcher: registers both names with its own target."""
    package = root / "hydra_plugins" / "hydra_submitit_launcher"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "config.py").write_text(FAKE_UPSTREAM_CONFIG)
    return root


@pytest.mark.parametrize("scanned", ["first", "last"])
def test_beside_upstream_ours_wins_and_says_so(tmp_path: Path, scanned: str) -> None:
    _, app = make_app_repo(tmp_path / "project")
    fake = fake_upstream(tmp_path / "fake")
    python = make_venv(tmp_path / "venv")
    env = dict(os.environ)
    if scanned == "first":  # PYTHONPATH comes before every site dir
        env["PYTHONPATH"] = str(fake)
    else:  # a site dir read after ours: Hydra scans (and runs) the stand-in after ours
        site = Path(python).parent.parent / "lib"
        pth = next(site.glob("python*/site-packages/_test_run_packages.pth"))
        pth.with_name("zz_fake_upstream.pth").write_text(f"{fake}\n")
    where = subprocess.run(
        [
            python,
            "-c",
            "import hydra_plugins, hydra_plugins.git_slurm_launcher as g; "
            "print(*hydra_plugins.__path__, sep='\\n'); print(g.__path__[0])",
        ],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    order, ours = where[:-1], str(Path(where[-1]).parent)
    assert (order.index(str(fake / "hydra_plugins")) < order.index(ours)) == (scanned == "first")
    for launcher in ("submitit_local", "submitit_slurm"):
        done = subprocess.run(
            [
                python,
                "my_app.py",
                f"hydra/launcher={launcher}",
                "--cfg",
                "hydra",
                "-p",
                "hydra.launcher",
            ],
            cwd=app,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        kind = "Local" if launcher == "submitit_local" else "Slurm"
        target = f"_target_: hydra_plugins.git_slurm_launcher.launcher.{kind}Launcher"
        assert target in done.stdout.splitlines()
        assert done.stderr.splitlines() == [MESSAGE]


def test_alone_there_is_no_message(tmp_path: Path) -> None:
    _, app = make_app_repo(tmp_path / "project")
    done = subprocess.run(
        [
            sys.executable,
            "my_app.py",
            "hydra/launcher=submitit_slurm",
            "--cfg",
            "hydra",
            "-p",
            "hydra.launcher",
        ],
        cwd=app,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "  enabled: false" in done.stdout.splitlines()
    assert "wait: true" in done.stdout.splitlines()
