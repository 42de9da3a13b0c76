"""What a snapshot launch freezes besides the modules it imports: the YAML every job composes
(primary config, a config group, `hydra.searchpath` entries, absolute and relative, and a
`--config-dir` in the repository, `pkg://` configs) and the files a task finds from its own
code's location (`Path(__file__).parent / "prompts.txt"`, also through a module-level global),
for a script run as `python app.py` and as `python -m cfgpkg.run`.

Each job is held before its Python starts while the test edits every such file in the checkout;
the same launch with the snapshot off is the control that sees every edit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gitrepo import Repo
from launcher_apps.support import results, wait_until
from test_launcher_e2e import SNAPSHOT, queue_line, snapshot_of

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
    try:
        wait_until(
            lambda: len(list(markers.glob("queued-*"))) == 2 or proc.poll() is not None,
            "both jobs to wait",
        )
        edit_everything(app)
        go.touch()
        assert proc.wait(timeout=180) == 0, log.read_text()
    finally:
        go.touch()
        if proc.poll() is None:
            proc.kill()
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
    argv = [sys.executable, "guarded.py", "-m", "+n=0", "hydra/launcher=submitit_local"]
    done = subprocess.run(
        [*argv, *SNAPSHOT], cwd=app, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (
        "git-slurm: the jobs run the task function as pickled at launch, not imported from the "
        "snapshot: the snapshot's guarded.py does not define `main` at module level"
    ) in done.stdout
    (result,) = results(app / "multirun")
    assert result["script"] == str(app / "guarded.py")  # the launch's, as the warning says
