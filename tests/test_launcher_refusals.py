"""What a snapshot launch refuses before it submits anything (one line, nothing queued), and
what it warns about: a launch directory the snapshot lacks, an unknown key under
hydra.launcher.snapshot, a `setup` line that installs the snapshot into the user's
environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from launcher_apps.support import make_app_repo, results, run_app
from test_launcher_e2e import SNAPSHOT, worktree_record

from hydra_plugins.git_slurm_launcher._launch_checks import installing_setup_lines

LOCAL = "hydra/launcher=submitit_local"


def assert_refused(done_stderr: str, first_line: str, app: Path) -> None:
    assert done_stderr.strip().splitlines()[0] == first_line
    assert "Traceback" not in done_stderr
    assert not list(app.rglob(".submitit/*"))


def test_a_launch_directory_the_snapshot_lacks_is_refused(tmp_path: Path) -> None:
    repo, app = make_app_repo(tmp_path / "project")
    ignored = repo.path / "scratch"  # git ignores it: the snapshot has no copy
    repo.write(".gitignore", (repo.path / ".gitignore").read_text() + "scratch/\n")
    repo.commit("ignore scratch")
    os.rename(app, ignored)
    done = run_app(ignored, "seed=0,1", LOCAL, *SNAPSHOT)
    assert done.returncode != 0
    (branch,) = repo.git("branch", "--list", "slurm-job-*").split()
    worktree = repo.path / ".git" / "slurm-snapshots" / branch
    assert_refused(
        done.stderr,
        f"git-slurm: no job submitted: the launch directory {ignored} is not in the snapshot "
        "(ignored by git?), so no job could start in it; launch from a directory git tracks "
        f"(`git slurm-gc` reclaims {worktree} once this launch has ended)",
        ignored,
    )
    assert worktree_record(repo.path, str(worktree))["jobs"] == []  # gc may reclaim it


@pytest.mark.parametrize(
    ("key", "hint"),
    [("enable", " (did you mean `enabled`?)"), ("frobnicate", "")],
)
def test_an_unknown_snapshot_key_is_refused(tmp_path: Path, key: str, hint: str) -> None:
    repo, app = make_app_repo(tmp_path / "project")
    done = run_app(app, "seed=0", LOCAL, f"+hydra.launcher.snapshot.{key}=true")
    assert done.returncode != 0
    assert_refused(
        done.stderr,
        f"git-slurm: no job submitted: unknown key hydra.launcher.snapshot.{key}{hint}; the "
        "valid keys are enabled, branch_prefix, symlink_paths, push_to_remote, worktree_dir, "
        "submodules",
        app,
    )
    assert repo.git("branch", "--list", "slurm-job-*") == ""


def test_a_setup_line_installing_the_snapshot_is_warned_about(tmp_path: Path) -> None:
    _, app = make_app_repo(tmp_path / "project")
    line = '[ -z "$NEVER_SET" ] || pip install -e .'  # never runs: only its words matter
    done = run_app(app, "seed=0", LOCAL, *SNAPSHOT, f"+hydra.launcher.setup=['{line}']")
    assert done.returncode == 0, done.stderr
    assert (
        f"git-slurm: setup line `{line}` runs in the snapshot worktree and installs it into "
        "the environment the jobs share with you"
    ) in done.stdout
    assert len(results(app / "multirun")) == 1


CHECKOUT = "/home/u/project"
INSTALLS = [
    "pip install -e .",
    "pip install --editable .",
    "pip install --editable=.[dev]",
    "python -m pip install -q -e pkgs/srcpkg",
    "uv pip install -e .",
    "pip3 install .",
    "module load cuda && pip install -e ./lib",
    f"pip install -e {CHECKOUT}/pkgs/flatpkg",
    "python setup.py develop",
    "cd sub && python setup.py install",
]
HARMLESS = [
    "pip install numpy==1.26",
    "pip install -r requirements.txt",
    "pip install -e git+https://example.org/x.git#egg=x",
    "pip install -e /opt/other-project",
    "pip install /opt/wheels/tool-1.0.whl",
    "pip list",
    "export PIP_INSTALL=.",
    "source .venv/bin/activate",
]


def in_checkout(path: str) -> bool:
    return path == CHECKOUT or path.startswith(CHECKOUT + "/")


def test_which_setup_lines_install_the_repositorys_code() -> None:
    assert installing_setup_lines(INSTALLS + HARMLESS, in_checkout) == INSTALLS
