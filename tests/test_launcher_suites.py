"""Hydra's own launcher test suites (shipped in hydra.test_utils), as upstream runs them.

Snapshot off: both launchers pass them as hydra-submitit-launcher does. Snapshot on: the same
suites pass from inside a git repository, every job running from its launch's worktree.
SLURM variants need the test cluster (`make cluster`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Type

import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite

from hydra_plugins.git_slurm_launcher import launcher

SNAPSHOT_ON = [
    "hydra.launcher.snapshot.enabled=true",
    "hydra.launcher.snapshot.push_to_remote=false",
]
SLURM = [pytest.mark.slurm]
# SLURM sends USR2 `signal_delay_s` (120 s) before the time limit, so a limit of 1 or 2 minutes
# (what the suites use with the local executor) signals a job at its first scheduler tick,
# possibly before submitit's handler is installed: the job then dies of the signal.
SLURM_TIME_LIMIT = "hydra.launcher.timeout_min=10"


@pytest.fixture(scope="module", autouse=True)
def plugins_scanned() -> None:
    """Scan Hydra's plugins before the first case: Hydra 1.4's test fixtures restore its
    singletons after each case, forgetting the configs a plugin module registers when first
    imported (`hydra/sweeper/basic`), so any case after one that did the first scan fails."""
    Plugins.instance()


@pytest.fixture(autouse=True)
def cluster_for_slurm_cases(request: pytest.FixtureRequest) -> None:
    """The SLURM cases need the test cluster (skipped without one, failed in CI)."""
    if request.node.get_closest_marker("slurm"):
        request.getfixturevalue("slurm_cluster")


def git_init(path: Path) -> Path:
    """Make `path` a git repository (the suites' apps are then untracked files in it)."""
    if not (path / ".git").exists():
        subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


@pytest.mark.parametrize("cls", [launcher.LocalLauncher, launcher.SlurmLauncher])
def test_discovery(cls: Type[Launcher]) -> None:
    assert cls.__name__ in [x.__name__ for x in Plugins.instance().discover(Launcher)]


@pytest.mark.parametrize(
    "launcher_name, overrides",
    [
        pytest.param("submitit_local", ["hydra.launcher.timeout_min=2"], id="local"),
        pytest.param("submitit_slurm", [SLURM_TIME_LIMIT], id="slurm", marks=SLURM),
    ],
)
class TestLauncherSuite(LauncherTestSuite):
    pass


@pytest.fixture
def in_git_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Launch from a fresh repository, as a user with the snapshot on would."""
    repo = git_init(tmp_path / "repo")
    monkeypatch.chdir(repo)
    return repo


@pytest.mark.usefixtures("in_git_repository")
@pytest.mark.parametrize(
    "launcher_name, overrides",
    [
        pytest.param("submitit_local", ["hydra.launcher.timeout_min=2", *SNAPSHOT_ON], id="local"),
        pytest.param(
            "submitit_slurm",
            [SLURM_TIME_LIMIT, *SNAPSHOT_ON],
            id="slurm",
            marks=SLURM,
        ),
    ],
)
class TestLauncherSuiteWithSnapshot(LauncherTestSuite):
    pass


INTEGRATION_FLAGS = [
    "-m",
    "hydra/hydra_logging=disabled",
    "hydra/job_logging=disabled",
    "hydra.launcher.gpus_per_node=0",
]


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [
        pytest.param(
            {},
            [*INTEGRATION_FLAGS, "hydra.launcher.timeout_min=1", "hydra/launcher=submitit_local"],
            id="local",
        ),
        pytest.param(
            {},
            [*INTEGRATION_FLAGS, SLURM_TIME_LIMIT, "hydra/launcher=submitit_slurm"],
            id="slurm",
            marks=SLURM,
        ),
    ],
)
class TestIntegrationSuite(IntegrationTestSuite):
    pass


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [
        pytest.param(
            {},
            [
                *INTEGRATION_FLAGS,
                "hydra.launcher.timeout_min=1",
                "hydra/launcher=submitit_local",
                *SNAPSHOT_ON,
            ],
            id="local",
        ),
        pytest.param(
            {},
            [*INTEGRATION_FLAGS, SLURM_TIME_LIMIT, "hydra/launcher=submitit_slurm", *SNAPSHOT_ON],
            id="slurm",
            marks=SLURM,
        ),
    ],
)
class TestIntegrationSuiteWithSnapshot(IntegrationTestSuite):
    def get_test_scratch_dir(self, tmpdir: Path) -> Path:
        """The suite's app dir, made a repository: its task.py and config are snapshotted."""
        return git_init(Path(tmpdir))
