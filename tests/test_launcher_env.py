"""Unit tests of the launcher's core: the `git slurm-snapshot` call, job records, and where a
job's Python looks for the user's modules."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
from gitrepo import Repo
from silentserver import SilentServer

from git_slurm import launch
from git_slurm.errors import GitSlurmError
from git_slurm.jobstate import parse_start_ticks, process_start_ticks
from git_slurm.launch import (
    SnapshotSettings,
    error_line,
    job_ref,
    original_root,
    snapshot_command,
    take_launch_snapshot,
)
from git_slurm.launch_env import (
    PathMap,
    current_import_roots,
    editable_finders,
    editable_locations,
    import_roots,
    job_pythonpath,
    shell_setup,
)


def test_settings_become_snapshot_options() -> None:
    assert SnapshotSettings().options() == [
        "--json",
        "--prefix",
        "slurm-job",
        "--link",
        "outputs",
        "--link",
        "multirun",
        "--link",
        ".submitit",
    ]
    custom = SnapshotSettings(
        branch_prefix="exp",
        symlink_paths=("data",),
        push_to_remote=False,
        worktree_dir="~/wt",
        message="sweep",
        submodules=True,
    ).options()
    home = str(Path("~/wt").expanduser())
    assert custom == [
        "--json",
        "--prefix",
        "exp",
        "--link",
        "data",
        "--worktree-dir",
        home,
        "--no-push",
        "-m",
        "sweep",
        "--submodules",
    ]
    assert SnapshotSettings(submodules=False).options()[-1] == "--no-submodules"


def test_error_line_is_the_tools_error_without_its_prefix() -> None:
    assert error_line("git-slurm: a note\nerror: not a git repository: /x\n", 3) == (
        "not a git repository: /x"
    )
    assert error_line("Traceback ...\nKeyError: 'x'\n", 1) == "KeyError: 'x'"
    assert error_line("", 9) == "git slurm-snapshot exited with status 9"


def test_original_root_drops_the_launch_dirs_prefix(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert original_root(tmp_path / "a" / "b", Path("a/b")) == tmp_path.resolve()
    assert original_root(tmp_path, Path(".")) == tmp_path.resolve()


def test_start_ticks_survive_odd_command_names() -> None:
    stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 10 0 0 0 1 2 0 0 20 0 1 0 123456 1000 50"
    assert parse_start_ticks(stat) == 123456
    assert process_start_ticks(os.getpid()) == parse_start_ticks(
        Path("/proc/self/stat").read_text()
    )


def test_local_jobs_are_recorded_with_their_start_ticks() -> None:
    ref = job_ref(str(os.getpid()), "local")
    assert (ref.kind, ref.start_ticks) == ("local", process_start_ticks(os.getpid()))
    assert job_ref("1234_5", "slurm").start_ticks is None


def test_the_module_runs_when_git_cannot_find_the_script() -> None:
    assert snapshot_command({"PATH": "/nonexistent"}) == [
        sys.executable,
        "-m",
        "git_slurm.cli.snapshot",
    ]


def test_a_launch_snapshot_from_a_subdirectory(repo: Repo) -> None:
    launch_dir = repo.path / "pkg"
    snap = take_launch_snapshot(SnapshotSettings(push_to_remote=False), launch_dir)
    assert snap.workdir == snap.worktree / "pkg"
    assert snap.origin == repo.path.resolve()
    assert snap.launch_dir == launch_dir
    assert not snap.dirty and snap.pushed is None and snap.seconds > 0
    assert snap.record()["commit"] == repo.git("rev-parse", "HEAD").strip()
    assert f"snapshot {snap.branch} at {snap.commit[:12]} (clean), new worktree " in (
        snap.summary()
    )


def test_a_failed_launch_snapshot_says_why(tmp_path: Path) -> None:
    with pytest.raises(GitSlurmError, match=f"^not a git repository: {tmp_path}$"):
        take_launch_snapshot(SnapshotSettings(), tmp_path)


def processes_working_in(path: Path) -> list[int]:
    """Pids of the live processes whose current directory is `path` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")) == path:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.timeout(60)  # before: git was killed, its child kept the pipes, the launch hung
def test_a_launch_snapshot_past_its_time_is_ended_with_all_it_started(
    repo: Repo, silent_server: SilentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`git slurm-snapshot` runs as git's child: at the launcher's timeout both must end, not
    only git, or the snapshot would go on making a branch for a launch that gave up."""
    repo.git("remote", "add", "origin", silent_server.url)  # its push never ends by itself
    repo.git("config", "slurm.pushTimeout", "10m")
    monkeypatch.setattr(launch, "SNAPSHOT_TIMEOUT", 3.0)
    with pytest.raises(GitSlurmError, match="timed out after 3"):
        take_launch_snapshot(SnapshotSettings(), repo.path)
    assert processes_working_in(repo.path.resolve()) == []


@pytest.fixture
def checkout(tmp_path: Path) -> PathMap:
    """An original checkout and its worktree (which lacks the ignored `build/` and `.venv/`)."""
    origin, worktree = tmp_path / "repo", tmp_path / "wt"
    for root in (origin, worktree):
        for rel in ("src/pkg", "lib", "exp", "flat/fpkg", "odd/src_dir"):
            (root / rel).mkdir(parents=True)
    for rel in ("build/lib", ".venv/lib/site-packages"):
        (origin / rel).mkdir(parents=True)
    return PathMap(origin=origin, worktree=worktree)


def test_paths_map_into_the_worktree_only_when_it_has_them(checkout: PathMap) -> None:
    origin, worktree = checkout.origin, checkout.worktree
    assert checkout.into_worktree(str(origin / "src")) == str(worktree / "src")
    assert checkout.into_worktree(str(origin)) == str(worktree)
    assert checkout.into_worktree(str(origin / "build" / "lib")) is None  # ignored by git
    assert checkout.into_worktree(str(origin.parent)) is None  # outside the checkout
    assert checkout.into_worktree(str(worktree / "src")) is None  # already the snapshot
    link = origin.parent / "link-to-repo"
    link.symlink_to(origin)
    assert checkout.into_worktree(str(link / "lib")) == str(worktree / "lib")


def fake_finder(mapping: dict[str, str]) -> tuple[list[object], dict[str, ModuleType]]:
    """A meta_path and sys.modules holding one setuptools-style editable finder."""
    module = ModuleType("__editable___fake_0_1_finder")
    module.MAPPING = mapping  # type: ignore[attr-defined]
    module.NAMESPACES = {}  # type: ignore[attr-defined]
    finder = type("_EditableFinder", (), {"__module__": module.__name__})
    return [object(), finder], {module.__name__: module}


def test_job_pythonpath_points_every_checkout_entry_into_the_worktree(checkout: PathMap) -> None:
    origin, worktree = checkout.origin, checkout.worktree
    meta_path, modules = fake_finder(
        {"fpkg": str(origin / "flat" / "fpkg"), "renamed": str(origin / "odd" / "src_dir")}
    )
    sys_path = [
        str(origin / "exp"),  # the script's directory
        "/opt/shared/lib",  # from PYTHONPATH, outside the checkout: stays
        str(origin / "lib"),  # from PYTHONPATH, into the checkout
        "/usr/lib/python3.11",
        str(origin / ".venv" / "lib" / "site-packages"),  # a virtualenv inside the repository
        str(origin / "src"),  # an editable install's static .pth line
        str(origin / "build" / "lib"),  # in the checkout, not in the snapshot
        "__editable__.fake-0.1.finder.__path_hook__",  # setuptools' placeholder
    ]
    environ = {"PYTHONPATH": os.pathsep.join(["/opt/shared/lib", "lib"])}
    roots = import_roots(
        checkout,
        sys_path,
        environ,
        str(origin),
        editable_locations(editable_finders(meta_path, modules)),
        installed=[str(origin / ".venv")],
    )
    pythonpath, missing = job_pythonpath(checkout, roots)
    assert pythonpath == [
        str(worktree / "exp"),
        "/opt/shared/lib",
        str(worktree / "lib"),
        str(worktree / "src"),
        str(origin / "build" / "lib"),
        str(worktree / "flat"),
    ]
    assert missing == [str(origin / "odd" / "src_dir"), str(origin / "build" / "lib")]


def test_a_python_prefix_above_the_checkout_hides_none_of_it(
    checkout: PathMap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Python built with --prefix=$HOME, the checkout somewhere in $HOME: the checkout's
    entries on sys.path are still the snapshot's to map (they are not installed code)."""
    origin = checkout.origin
    for name in ("prefix", "exec_prefix", "base_prefix", "base_exec_prefix"):
        monkeypatch.setattr(sys, name, str(origin.parent))
    monkeypatch.setattr(sys, "path", [str(origin / "src"), *sys.path])
    monkeypatch.delenv("PYTHONPATH", raising=False)
    roots = current_import_roots(checkout, str(origin.parent))
    assert str(origin / "src") in roots.entries


def test_shell_setup_enters_the_worktree_first() -> None:
    lines = shell_setup(Path("/w t/exp"), ["/w t/exp", "/x"], {"GIT_SLURM_BRANCH": "b"})
    assert lines == [
        "cd -- '/w t/exp' || exit 1",
        "export PYTHONPATH='/w t/exp:/x'",
        "export GIT_SLURM_BRANCH=b",
    ]
    assert shell_setup(Path("/w"), [], {})[1] == "unset PYTHONPATH"
