"""Hermetic tests: a fresh HOME, no system/global git config (for git and for libgit2)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest
from gitrepo import Repo  # tests/ is on sys.path: pytest's rootdir-relative conftest import
from needs import MountTmpfs, mounts, unavailable
from plumbum import local
from silentserver import SilentServer
from slurm_support import end_jobs_working_under, slurm_available

ROOT = Path(__file__).resolve().parent.parent
START_HINT = "start one with `make cluster` (runs bash tests/slurm/cluster.sh start as root)"


def pytest_configure(config: pytest.Config) -> None:
    """A run started in the background by a shell without job control (`make test &`, a CI
    runner's script, nohup) inherits SIGINT ignored, and every process a test starts would too:
    the tests' real Ctrl-Cs (test_crash, the launcher's status line) would go unheard. A
    handler of ours is reset to the default in each child; an ignored signal would stay so."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def slurm_required() -> bool:
    """In CI a missing cluster is a broken setup, not a reason to skip the SLURM tests."""
    return os.environ.get("CI") == "true" or os.environ.get("GIT_SLURM_REQUIRE_SLURM") == "1"


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[None]:
    """A reachable SLURM cluster: skip the test without one, or fail it when one is required."""
    available, reason = slurm_available()
    if not available:
        message = f"no SLURM cluster: {START_HINT} [{reason}]"
        if slurm_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    yield


@pytest.fixture(autouse=True)
def slurm_jobs_end_with_their_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test on the cluster leaves it as it found it: whatever of its jobs (found by their
    working directory or batch script under its tmp_path) is still pending or running when it
    ends, by a failure or not, is cancelled and waited for, so that no later test waits for
    CPUs it holds."""
    if "slurm_cluster" not in request.fixturenames:
        yield
        return
    tmp_path: Path = request.getfixturevalue("tmp_path")
    yield
    if slurm_available()[0]:
        left = end_jobs_working_under(tmp_path)
        if left:  # said, not failed: the test's own assertions decide whether it passed
            warnings.warn(f"jobs left pending or running, now ended: {left}", stacklevel=1)


@pytest.fixture(scope="session")
def git_lfs() -> None:
    """git-lfs installed: skip without it on a laptop, fail in CI (which installs it)."""
    if shutil.which("git-lfs") is None:
        unavailable("git-lfs is not installed (Debian: apt-get install git-lfs; .ci/run does)")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A real process standing for a job of the local executor."""
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def mount_tmpfs() -> Iterator[MountTmpfs]:
    """Mount a small tmpfs (or bind a directory) at a path; undone after the test."""
    yield from mounts()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.socket.close()


@pytest.fixture(autouse=True)
def hermetic_seal(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Every test runs with its own HOME and git config, whatever the developer's machine has."""
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith("GIT_") and not name.startswith("GIT_SLURM_"):
            monkeypatch.delenv(name)
    global_config = home / ".gitconfig"
    global_config.write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n"
        "[init]\n\tdefaultBranch = main\n"
        '[protocol "file"]\n\tallow = always\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(global_config))
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    # libgit2 does not read GIT_CONFIG_*: point its own search path at the sealed HOME too
    levels = (
        pygit2.enums.ConfigLevel.GLOBAL,
        pygit2.enums.ConfigLevel.XDG,
        pygit2.enums.ConfigLevel.SYSTEM,
    )
    saved = {level: pygit2.settings.search_path[level] for level in levels}
    for level in levels:
        pygit2.settings.search_path[level] = str(home)
    monkeypatch.setenv(
        "PATH",
        f"{ROOT / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    # plumbum copied os.environ when it was imported: give in-process git calls the seal too
    with local.env():
        for name in [n for n, _ in local.env if n not in os.environ]:
            local.env.pop(name)
        local.env.update(**os.environ)
        yield home
    for level, value in saved.items():
        pygit2.settings.search_path[level] = value


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """A fresh repository with one commit, a nested package and an ignored output dir."""
    return Repo.create(tmp_path / "project")
