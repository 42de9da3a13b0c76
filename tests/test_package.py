"""git-slurm as a user gets it: an sdist, `pip install --user` of it into a fresh HOME, then
the hook, the man pages (with MANPATH set as `module load` sets it), the completion, and the
test suite run from the unpacked sdist."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from gitrepo import ROOT, Repo
from test_completion import bash_tab

BASE_PYTHON = Path(getattr(sys, "_base_executable", sys.executable))
MODULES_MANPATH = "/opt/modules/share/man"  # what `module load` leaves: no empty entry


def run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(out), str(ROOT)],
        ROOT,
        {**os.environ},
    )
    (archive,) = out.glob("git_slurm-*.tar.gz")
    return archive


@pytest.fixture(scope="module")
def user_home(sdist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME in which `pip install --user` of the sdist (with its test extra) was run."""
    home = tmp_path_factory.mktemp("user-home")
    env = user_env(home)
    run([str(BASE_PYTHON), "-m", "pip", "install", "-q", "--user", f"{sdist}[test]"], home, env)
    return home


def user_env(home: Path, **more: str) -> dict[str, str]:
    """A login of that user: their ~/.local/bin on PATH, and nothing of this venv or checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.pop("MANPATH", None)
    env.update(HOME=str(home), PATH=f"{home}/.local/bin:/usr/local/bin:/usr/bin:/bin", **more)
    # its default, said explicitly: the test suite run from the sdist gives each test a HOME
    env["PYTHONUSERBASE"] = str(home / ".local")
    return env


def test_the_sdist_holds_the_project_and_its_licence(sdist: Path) -> None:
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for needed in (
        "LICENSE",
        "tests/conftest.py",
        "tests/launcher_apps/sweep_app",
        "git_slurm/hooks/post-checkout",
        "completions/bash/git-slurm-snapshot",
        "man/git-slurm-gc.1",
        "Makefile",
    ):
        assert needed in names, needed
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_a_user_install_has_a_working_hook(user_home: Path, tmp_path: Path) -> None:
    """Before, --install-hooks failed 'the hook template is missing' (it was a data file)."""
    env = user_env(user_home)
    repo = Repo.create(tmp_path / "project")
    said = run(["git", "slurm-snapshot", "--install-hooks"], repo.path, env)
    assert f"{user_home}/.local/bin/git-slurm-snapshot" in run(
        ["sh", "-c", "command -v git-slurm-snapshot"], repo.path, env
    )
    assert "installed git-slurm's post-checkout hook" in said
    run(["git", "switch", "-q", "-c", "feature"], repo.path, env)
    switched = run(["git", "switch", "-"], repo.path, env)
    assert "git-slurm:" not in switched  # no "no reminder: cannot run git_slurm" line


def test_git_lists_the_commands_and_not_the_hook_entry_point(user_home: Path) -> None:
    listed = run(["git", "help", "-a"], user_home, user_env(user_home))
    assert re.search(r"^\s+slurm-snapshot\b", listed, re.M)
    assert "slurm-post-checkout" not in listed


@pytest.mark.parametrize("manpath", ["unset", "lmod-style", "modules-style"])
def test_git_help_opens_the_man_page(user_home: Path, manpath: str) -> None:
    """With MANPATH unset or holding an empty entry, man finds the page beside ~/.local/bin;
    with a MANPATH of modules only, after the README's line."""
    env = user_env(user_home, MANPAGER="cat", PAGER="cat", MANWIDTH="80")
    if manpath == "lmod-style":
        env["MANPATH"] = f"{MODULES_MANPATH}:"
    setup = ""
    if manpath == "modules-style":
        env["MANPATH"] = MODULES_MANPATH
        setup = readme_manpath_line() + "; "
    page = run(["sh", "-c", f"{setup}git slurm-snapshot --help"], user_home, env)
    assert re.search(r"git-slurm-snapshot +- +record the working tree", page), page


def test_bash_finds_the_user_installed_completion(user_home: Path) -> None:
    """bash-completion loads ~/.local/share/bash-completion/completions/git-slurm-snapshot
    when git's completion asks for it: no set-up at all."""
    said = bash_tab("git slurm-snapshot --js", "", user_home, user_env(user_home))
    assert said == ["--json "]


def test_the_tests_run_from_the_unpacked_sdist(
    sdist: Path, user_home: Path, tmp_path: Path
) -> None:
    with tarfile.open(sdist) as tar:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp_path, **safe)  # type: ignore[arg-type]
    (unpacked,) = tmp_path.glob("git_slurm-*")
    env = user_env(user_home)
    tests = ["tests/test_age.py", "tests/test_hook_install.py", "tests/test_hook_precommit.py"]
    pytest_argv = [str(BASE_PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
    summary = run(pytest_argv, unpacked, env).strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary, summary
    assert "error" not in summary, summary


def readme_manpath_line() -> str:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- manpath-line", 1)[1].split("```bash\n", 1)[1]
    return block.split("\n```", 1)[0].strip()
