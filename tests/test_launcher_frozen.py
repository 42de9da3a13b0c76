"""What a snapshot launch freezes besides the modules it imports: the YAML every job composes
(primary config, a config group, `hydra.searchpath` entries, absolute and relative, and a
`--config-dir` in the repository, `pkg://` configs) and the files a task finds from its own
code's location (`Path(__file__).parent / "prompts.txt"`, also through a module-level global),
for a script run as `python app.py` and as `python -m cfgpkg.run`.

Each job is held before its Python starts while the test edits every such file in the checkout;
the same launch with the snapshot off is the control that sees every edit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gitrepo import Repo
from launcher_apps.support import results
from test_launcher_e2e import SNAPSHOT, edit_once_both_wait, queue_line, snapshot_of

APP = Path(__file__).resolve().parent / "launcher_apps" / "config_app"
EDITED = [  # every file whose text a job reports; each says "old" until the test edits it
    "conf/config.yaml",
    "conf/group/a.yaml",
    "shared/extra/s.yaml",
    "extra_conf/cd/c.yaml",
    "cfgpkg/conf/p/q.yaml",
    "cfgpkg/conf/config.yaml",
    "prompts.txt",
    "cfgpkg/prompts.txt",
]
ENTRY = {"script": ["app.py"], "module": ["-m", "cfgpkg.run"]}


def make_config_repo(root: Path) -> tuple[Repo, Path]:
    repo = Repo.create(root, commit=False)
    app = root / "exp"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("__pycache__", "gitignore"))
    repo.write(".gitignore", (APP / "gitignore").read_text(encoding="utf-8"))
    repo.commit("the config app")
    return repo, app


def edit_everything(app: Path) -> None:
    for rel in EDITED:
        path = app / rel
        path.write_text(path.read_text(encoding="utf-8").replace("old", "new"), encoding="utf-8")


def launch_held(tmp_path: Path, app: Path, entry: str, *flags: str) -> list[dict[str, Any]]:
    """Two jobs that compose every kind of config source; edited while they are held."""
    hold, markers, go = queue_line(tmp_path)
    sources = ["+extra=s", "+cd=c", "+p=q"]
    if entry == "script":
        sources.append(f"hydra.searchpath=[file://{app}/shared,pkg://cfgpkg.conf]")
    else:  # the primary config is pkg://cfgpkg/conf, with a relative `hydra.searchpath`
        sources = ["+cd=c", "+extra=s"]
    argv = [sys.executable, *ENTRY[entry], "-m", "--config-dir", "extra_conf", "+n=0,1", *sources]
    argv += ["hydra/launcher=submitit_local", *flags, hold]
    log = tmp_path / "launch.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=app, stdout=out, stderr=subprocess.STDOUT)
    edit_once_both_wait(app, proc, markers, go, log, edit_everything)
    got = results(app / "multirun")
    assert len(got) == 2, log.read_text()
    return got


def leaves(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [leaf for value in node.values() for leaf in leaves(value)]
    return [node]


def values(result: dict[str, Any]) -> list[str]:
    """The first word of every string the job read from a config or a prompts file."""
    found = [*leaves(result["cfg"]), result["prompts_via_file"], result["prompts_via_global"]]
    return [v.split()[0] for v in found if isinstance(v, str)]


@pytest.mark.parametrize("entry", sorted(ENTRY))
def test_edits_after_the_launch_reach_no_job(tmp_path: Path, entry: str) -> None:
    repo, app = make_config_repo(tmp_path / "project")
    got = launch_held(tmp_path, app, entry, *SNAPSHOT)
    snap = snapshot_of(got[0])
    worktree, workdir = snap["worktree"], snap["workdir"]
    checkout = str(repo.path.resolve())
    for result in got:
        expected = 7 if entry == "script" else 5
        assert values(result) == ["old"] * expected, result
        assert result["cwd"] == workdir
        assert result["script"].startswith(workdir + os.sep)
        assert result["prompts_global_path"].startswith(workdir + os.sep)
        ours = [f for f in result["modules"] if f.startswith(checkout + os.sep)]
        assert ours and all(f.startswith(worktree + os.sep) for f in ours), ours
        # every config dir the job composed from is the snapshot's
        # (a relative one is relative to the job's working directory)
        sources = [os.path.join(result["cwd"], s) for s in result["file_sources"]]
        assert sources and all(s.startswith(worktree + os.sep) for s in sources), sources


@pytest.mark.parametrize("entry", sorted(ENTRY))
def test_control_without_snapshot_every_edit_reaches_the_jobs(tmp_path: Path, entry: str) -> None:
    _, app = make_config_repo(tmp_path / "project")
    got = launch_held(tmp_path, app, entry)
    for result in got:
        expected = 7 if entry == "script" else 5
        assert values(result) == ["new"] * expected, result


def launch_script(app: Path, script: str, sweep: str) -> subprocess.CompletedProcess[str]:
    """A snapshot launch of `script` to completion, which must succeed."""
    argv = [sys.executable, script, "-m", sweep, "hydra/launcher=submitit_local", *SNAPSHOT]
    done = subprocess.run(argv, cwd=app, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    return done


GUARDED = """from pathlib import Path

import hydra
import jobreport

PROMPTS = Path(__file__).parent / "prompts.txt"

if __name__ == "__main__":

    @hydra.main(version_base=None, config_path="conf", config_name="config")
    def main(cfg):
        jobreport.report(cfg, __file__, PROMPTS)

    main()
"""


def test_a_task_that_importing_the_script_does_not_define_travels_by_value(
    tmp_path: Path,
) -> None:
    """Defined only under `if __name__ == "__main__":`, the task cannot be found by importing
    the snapshot's script: the launch says so, and the job still runs (pickled by value)."""
    repo, app = make_config_repo(tmp_path / "project")
    repo.write("exp/guarded.py", GUARDED)
    repo.commit("a guarded task")
    done = launch_script(app, "guarded.py", "+n=0")
    assert (
        "git-slurm: the jobs run the task function as pickled at launch, not imported from the "
        "snapshot: the snapshot's guarded.py does not define `main` at module level"
    ) in done.stdout
    (result,) = results(app / "multirun")
    assert result["script"] == str(app / "guarded.py")  # the launch's, as the warning says


UNGUARDED = {  # the task's name, and a script that calls it (or a wrapper) at import
    "main": """from pathlib import Path

import hydra
import jobreport

PROMPTS = Path(__file__).parent / "prompts.txt"


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg):
    jobreport.report(cfg, __file__, PROMPTS)


main()
""",
    "train": """from pathlib import Path

import hydra
import jobreport

PROMPTS = Path(__file__).parent / "prompts.txt"


def train(cfg):
    jobreport.report(cfg, __file__, PROMPTS)


main = hydra.main(version_base=None, config_path="conf", config_name="config")(train)
main()
""",
}


@pytest.mark.parametrize("task", sorted(UNGUARDED))
def test_a_script_without_a_main_guard_is_not_run_again_inside_its_jobs(
    tmp_path: Path, task: str
) -> None:
    """Importing a script that calls its task at module level would start Hydra again inside
    the job (which dies of it): the task travels by value instead, and the launch says why."""
    repo, app = make_config_repo(tmp_path / "project")
    repo.write("exp/unguarded.py", UNGUARDED[task])
    repo.commit("a script without a main guard")
    done = launch_script(app, "unguarded.py", "+n=0,1")
    assert "the snapshot's unguarded.py calls `main` when it is imported" in done.stdout, task
    got = results(app / "multirun")
    assert len(got) == 2
    assert all(values(r) == ["old"] * 4 for r in got), got


DECORATED = """import functools
from pathlib import Path

import hydra
import jobreport

PROMPTS = Path(__file__).parent / "prompts.txt"


def logged(function):
    @functools.wraps(function)
    def wrapper(cfg):
        return function(cfg)

    return wrapper


@hydra.main(version_base=None, config_path="conf", config_name="config")
@logged
def main(cfg):
    jobreport.report(cfg, __file__, PROMPTS)


if __name__ == "__main__":
    main()
"""


def test_a_task_under_another_decorator_runs_from_the_snapshot(tmp_path: Path) -> None:
    """`@hydra.main` over a decorator of the user's own: the job still imports the snapshot's
    script and runs its decorated task (the decorator included), `__file__` in the worktree."""
    repo, app = make_config_repo(tmp_path / "project")
    repo.write("exp/decorated.py", DECORATED)
    repo.commit("a decorated task")
    done = launch_script(app, "decorated.py", "+n=0")
    assert "pickled at launch" not in done.stdout, done.stdout
    (result,) = results(app / "multirun")
    workdir = snapshot_of(result)["workdir"]
    assert result["script"] == os.path.join(workdir, "decorated.py")
    assert result["prompts_global_path"].startswith(workdir + os.sep)


ARGV_AT_IMPORT = """import json
import json
import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig

ARGV = list(sys.argv)  # what the script was started with, read once at import


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg):
    with open(os.path.join(HydraConfig.get().runtime.output_dir, "argv.json"), "w") as out:
        json.dump({"argv": ARGV, "file": __file__}, out)


if __name__ == "__main__":
    main()
"""


def test_module_globals_built_from_argv_see_the_launch_command(tmp_path: Path) -> None:
    """A global the script builds from `sys.argv` at import has the launch's value in a job
    (as when the task travelled by value, and as multiprocessing's spawn does), while the job
    still runs the snapshot's script."""
    repo, app = make_config_repo(tmp_path / "project")
    repo.write("exp/argv_app.py", ARGV_AT_IMPORT)
    repo.commit("a script that reads sys.argv at import")
    launch_script(app, "argv_app.py", "+n=0")
    (found,) = (app / "multirun").rglob("argv.json")
    got = json.loads(found.read_text(encoding="utf-8"))
    assert got["argv"][1:4] == ["-m", "+n=0", "hydra/launcher=submitit_local"], got
    assert got["file"] != str(app / "argv_app.py"), got  # the snapshot's copy
