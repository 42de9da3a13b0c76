"""A job never runs code that differs from its commit: each job's start checks its worktree
against the commit and restores what differs (or refuses to run); a worktree whose files a
job changed is never reused or linked from. Jobs run as root here, and root ignores the
read-only bits of snapshot files, so every write below succeeds as it would in a real job.

The job start is the real shell line the launcher puts into every job's setup, run by bash in
the job's working directory, followed by the job's Python importing the snapshot's module."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gitrepo import Repo, git
from launcher_apps.support import run_app

from git_slurm.launch import LaunchSnapshot
from hydra_plugins.git_slurm_launcher._snapshot_launch import job_setup

SNAPSHOT = ["hydra.launcher.snapshot.enabled=true", "hydra.launcher.snapshot.push_to_remote=false"]
EDITED = "VERSION = 'edited by a job'\n"

APP = '''"""Reports which helper it imported, then (when told) edits the helper in its worktree."""
import json
import os
import subprocess
from pathlib import Path

import helper
import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    report = {"version": helper.VERSION, "file": helper.__file__, "cwd": os.getcwd()}
    Path(cfg.out, f"{cfg.tag}.json").write_text(json.dumps(report))
    if cfg.edit == "inplace":  # root ignores the read-only bit: the same inode is written
        with open("helper.py", "w") as handle:
            handle.write("VERSION = 'edited by a job'\\n")
    elif cfg.edit == "sed":  # a new file renamed over the old one
        edit = "s/^VERSION = .*/VERSION = 'edited by a job'/"
        subprocess.run(["sed", "-i", edit, "helper.py"], check=True)
    elif cfg.edit == "hidden":  # in place, hidden from git's diff by an index flag
        subprocess.run(["git", "update-index", "--assume-unchanged", "helper.py"], check=True)
        with open("helper.py", "w") as handle:
            handle.write("VERSION = 'edited by a job'\\n")


if __name__ == "__main__":
    main()
'''


def snapshot(repo: Repo) -> Any:
    """`git slurm-snapshot --json` in the repository's root, plus where that was."""
    return {**repo.snapshot_json("--no-push"), "origin": str(repo.path)}


def make_app(root: Path) -> Repo:
    """A repository with a Hydra app that imports `helper` (VERSION = 'old') at start."""
    repo = Repo.create(root)
    repo.write("my_app.py", APP)
    repo.write("helper.py", "VERSION = 'old'\n")
    repo.write("conf/config.yaml", "edit: none\nout: null\ntag: job\n")
    repo.commit("the app")
    return repo


def setup_lines(snap: Any) -> list[str]:
    """The shell lines the launcher puts before every job of a launch of `snap`."""
    launch = LaunchSnapshot.from_json(snap, Path(snap["origin"]), 0.0)
    return job_setup(launch)


def job_script(snap: Any) -> str:
    """A job of `snap` as its batch script runs it: the launcher's setup lines, then the
    job's Python, which imports the snapshot's `helper` (as a job does when it unpickles)."""
    job = f"{sys.executable} -c 'import helper; print(helper.VERSION)'"
    return "\n".join([*setup_lines(snap), job])


def imported_version(snap: Any) -> subprocess.CompletedProcess[str]:
    """Run one job of `snap`; its stdout is the VERSION it imported."""
    return subprocess.run(
        ["bash", "-c", job_script(snap)], capture_output=True, text=True, timeout=120, check=False
    )


def record_of(worktree: str) -> Any:
    admin = Path(git(Path(worktree), "rev-parse", "--absolute-git-dir").strip())
    return json.loads((admin / "git-slurm.json").read_text())


def write_in_place(path: Path, text: str) -> None:
    """What a root job does to a read-only file: open it for writing, the inode unchanged."""
    with path.open("w") as handle:
        handle.write(text)


def linked_pair(repo: Repo) -> tuple[Any, Any]:
    """Snapshot S1, then S2 of a changed tree made from hard links to S1's files."""
    s1 = snapshot(repo)
    repo.write("other.py", "OTHER = 1\n")
    s2 = snapshot(repo)
    assert s2["materialised"]["source"] == s1["worktree"]
    one, two = Path(s1["worktree"], "helper.py"), Path(s2["worktree"], "helper.py")
    assert one.stat().st_ino == two.stat().st_ino
    return s1, s2


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory another uid can reach (pytest's own tmp dirs are private to root)."""
    where = Path(tempfile.mkdtemp(prefix="git-slurm-verify-"))
    where.chmod(0o755)
    yield where
    shutil.rmtree(where)


# ---- (b): a write through a hard link reaches another snapshot's queued job ----------------


def test_a_write_through_a_hard_link_is_restored_at_the_other_job_s_start(tmp_path: Path) -> None:
    repo = make_app(tmp_path / "project")
    s1, s2 = linked_pair(repo)
    shared = Path(s1["worktree"], "helper.py")
    write_in_place(shared, EDITED)  # S1's job edits its own file...
    assert Path(s2["worktree"], "helper.py").read_text() == EDITED  # ...and S2's with it

    started = imported_version(s2)

    assert started.returncode == 0, started.stderr
    assert started.stdout == "old\n"  # S2's job runs S2's code
    assert "WARNING" in started.stderr and "helper.py (modified)" in started.stderr
    assert s2["branch"] in started.stderr and s2["commit"][:12] in started.stderr
    restored = Path(s2["worktree"], "helper.py")
    assert restored.stat().st_ino != shared.stat().st_ino  # a new file, not written through
    assert restored.stat().st_mode & 0o222 == 0  # read-only like every snapshot file
    assert shared.read_text() == EDITED  # S1's own file is left to S1's jobs
    assert git(Path(s2["worktree"]), "status", "--porcelain", "--untracked-files=no") == ""
    assert record_of(s2["worktree"])["shareable"] is False

    again = imported_version(s2)  # the next job of S2 finds nothing to do, and says nothing
    assert (again.returncode, again.stdout, again.stderr) == (0, "old\n", "")
    s1_job = imported_version(s1)  # and S1's next job gets S1's code back too
    assert s1_job.stdout == "old\n" and "helper.py (modified)" in s1_job.stderr


def test_a_non_root_job_that_chmods_and_writes_is_caught(public_dir: Path) -> None:
    """Not only root: a job of the worktree's owner can make a file writable and edit it."""
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is missing")
    repo = make_app(public_dir / "project")
    s1, s2 = linked_pair(repo)
    nobody = "65534"
    subprocess.run(["chown", "-R", f"{nobody}:{nobody}", str(public_dir)], check=True)
    shared = Path(s1["worktree"], "helper.py")
    as_nobody = ["setpriv", f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups", "--"]
    refused = subprocess.run([*as_nobody, "sh", "-c", f"echo x > {shared}"], check=False)
    assert refused.returncode != 0  # the read-only bit holds for a job that is not root...
    edit = f"chmod u+w {shared} && printf \"VERSION = 'edited by a job'\\n\" > {shared}"
    subprocess.run([*as_nobody, "sh", "-c", edit], check=True)  # ...until it chmods the file
    assert Path(s2["worktree"], "helper.py").read_text() == EDITED

    started = imported_version(s2)

    assert started.returncode == 0, started.stderr
    assert started.stdout == "old\n"
    assert "helper.py (modified)" in started.stderr


def _index_and_file_changed(wt: Path) -> None:
    git(wt, "update-index", "--chmod=+x", "helper.py")
    write_in_place(wt / "helper.py", EDITED)


def _dir_swapped_for_a_link(wt: Path) -> None:
    shutil.rmtree(wt / "conf")
    (wt / "conf").symlink_to(wt.parent)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda wt: (wt / "helper.py").unlink(),
        lambda wt: git(wt, "rm", "-q", "--cached", "helper.py"),
        _index_and_file_changed,
        _dir_swapped_for_a_link,
    ],
    ids=["deleted", "dropped-from-the-index", "index-and-file-changed", "dir-swapped-for-a-link"],
)
def test_every_kind_of_change_is_restored(tmp_path: Path, tamper: Any) -> None:
    repo = make_app(tmp_path / "project")
    snap = snapshot(repo)
    worktree = Path(snap["worktree"])
    tamper(worktree)

    started = imported_version(snap)

    assert started.returncode == 0, started.stderr
    assert started.stdout == "old\n"
    assert "restored from git's object store" in started.stderr
    assert git(worktree, "diff", "--name-only", snap["commit"]) == ""
    assert (worktree / "conf/config.yaml").read_text() == "edit: none\nout: null\ntag: job\n"
    assert not (worktree / "conf").is_symlink()


def test_a_stale_bytecode_cache_of_an_edited_module_is_dropped(tmp_path: Path) -> None:
    """Python trusts a .pyc whose source mtime (seconds) and size match: an edit of the same
    size compiled in the second of the restore would otherwise be run by the next job."""
    repo = make_app(tmp_path / "project")
    snap = snapshot(repo)
    module = Path(snap["worktree"], "helper.py")
    write_in_place(module, "VERSION = 'new'\n")  # the same size as "VERSION = 'old'\n"
    compile_it = [
        sys.executable,
        "-c",
        "import sys; sys.dont_write_bytecode = False; import helper",
    ]
    subprocess.run(compile_it, cwd=snap["workdir"], check=True)
    assert list(module.parent.glob("__pycache__/helper.*.pyc"))  # the edit, compiled

    started = imported_version(snap)  # usually within the same second

    assert started.stdout == "old\n", started.stderr


def test_jobs_of_an_array_starting_at_once_restore_once_and_all_run_the_commit(
    tmp_path: Path,
) -> None:
    repo = make_app(tmp_path / "project")
    repo.write("pkg/more.py", "MORE = 1\n")
    repo.commit("more")
    snap = snapshot(repo)
    worktree = Path(snap["worktree"])
    write_in_place(worktree / "helper.py", EDITED)
    (worktree / "pkg/more.py").unlink()
    script = job_script(snap)
    jobs = [
        subprocess.Popen(
            ["bash", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(12)
    ]
    done = [(job.wait(timeout=120), *job.communicate()) for job in jobs]

    assert [rc for rc, _, _ in done] == [0] * 12, [err for _, _, err in done]
    assert [out for _, out, _ in done] == ["old\n"] * 12
    restorers = [err for _, _, err in done if "restored" in err]
    assert len(restorers) == 1, restorers  # the others found it done under the lock
    assert "helper.py (modified)" in restorers[0] and "pkg/more.py (deleted)" in restorers[0]
    assert git(worktree, "diff", "--name-only", snap["commit"]) == ""


def test_a_job_whose_files_cannot_be_restored_refuses_to_run(tmp_path: Path) -> None:
    repo = make_app(tmp_path / "project")
    snap = snapshot(repo)
    worktree = Path(snap["worktree"])
    write_in_place(worktree / "helper.py", EDITED)
    admin = Path(git(worktree, "rev-parse", "--absolute-git-dir").strip())
    (admin / "index.lock").write_text("")  # a git of the job's that died holding the index

    started = imported_version(snap)

    assert started.returncode != 0
    assert started.stdout == ""  # the job's Python never ran
    errors = [ln for ln in started.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: git-slurm: the job does not run")
    assert snap["branch"] in errors[0] and "Traceback" not in started.stderr


def test_a_node_where_git_cannot_run_refuses_the_job_of_a_changed_worktree(
    tmp_path: Path,
) -> None:
    repo = make_app(tmp_path / "project")
    snap = snapshot(repo)
    write_in_place(Path(snap["worktree"], "helper.py"), EDITED)
    script = f"PATH={tmp_path / 'empty'}\n{job_script(snap)}"

    started = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)

    assert started.returncode != 0 and started.stdout == ""
    assert "Traceback" not in started.stderr
    assert started.stderr.count("error: git-slurm: the job does not run") == 1, started.stderr


def test_a_clean_worktree_starts_without_python(tmp_path: Path) -> None:
    """The check of a clean worktree is git alone: no interpreter starts (it would cost more
    than the check), and nothing is said."""
    repo = make_app(tmp_path / "project")
    snap = snapshot(repo)
    Path(snap["worktree"], "helper.py").touch()  # stat noise only: the content is compared
    (line,) = [ln for ln in setup_lines(snap) if " diff " in ln]
    fast, _, _ = line.partition(" || ")
    done = subprocess.run(
        ["bash", "-c", fast], cwd=snap["workdir"], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


# ---- (a): a changed worktree is never reused or linked from ---------------------------------


def test_a_worktree_a_job_edited_with_sed_is_not_reused(tmp_path: Path) -> None:
    repo = make_app(tmp_path / "project")
    first = snapshot(repo)
    done = subprocess.run(
        ["sed", "-i", "s/old/edited by a job/", "helper.py"], cwd=first["workdir"], check=False
    )
    assert done.returncode == 0

    second = snapshot(repo)  # the identical tree

    assert second["reused"] is False
    assert second["worktree"] != first["worktree"]
    assert Path(second["worktree"], "helper.py").read_text() == "VERSION = 'old'\n"
    assert record_of(first["worktree"])["shareable"] is False
    third = snapshot(repo)
    assert third["reused"] is True and third["worktree"] == second["worktree"]


def test_a_worktree_a_job_restored_is_never_shared_again(tmp_path: Path) -> None:
    repo = make_app(tmp_path / "project")
    first = snapshot(repo)
    write_in_place(Path(first["worktree"], "helper.py"), EDITED)
    assert "restored" in imported_version(first).stderr  # clean again, but a job wrote there

    same_tree = snapshot(repo)
    repo.write("other.py", "OTHER = 2\n")
    new_tree = snapshot(repo)

    assert same_tree["reused"] is False and same_tree["worktree"] != first["worktree"]
    assert new_tree["materialised"]["source"] != first["worktree"]


def test_identical_tree_launches_through_submitit_local(tmp_path: Path) -> None:
    """End to end: a job that runs `sed -i` on its code, then a launch of the same tree."""
    repo = make_app(tmp_path / "project")
    out = tmp_path / "results"
    out.mkdir()
    local = ["hydra/launcher=submitit_local", *SNAPSHOT, f"out={out}"]
    first = run_app(repo.path, *local, "edit=sed", "tag=first")
    assert first.returncode == 0, first.stderr
    second = run_app(repo.path, *local, "tag=second")
    assert second.returncode == 0, second.stderr

    one = json.loads((out / "first.json").read_text())
    two = json.loads((out / "second.json").read_text())
    assert one["version"] == two["version"] == "old"
    assert Path(one["cwd"]) != Path(two["cwd"])  # not the worktree the first job edited
    assert os.path.samefile(Path(two["file"]).parent, two["cwd"])


# ---- the user's git config and index flags never blind the check ---------------------------


def test_a_global_core_ignore_stat_does_not_hide_an_edit(tmp_path: Path) -> None:
    """`core.ignoreStat=true` (a user's global config) makes every checkout mark its files
    assume-unchanged, which git's diff then never looks at: neither the snapshot's own
    checkout, nor a linked one's update, nor a restore may set that bit."""
    with Path(os.environ["GIT_CONFIG_GLOBAL"]).open("a") as config:
        config.write("[core]\n\tignoreStat = true\n")
    repo = make_app(tmp_path / "project")
    s1, s2 = linked_pair(repo)
    for snap in (s1, s2):
        assert "h " not in git(Path(snap["worktree"]), "ls-files", "-v")
    write_in_place(Path(s1["worktree"], "helper.py"), EDITED)  # reaches S2 by the hard link

    assert imported_version(s2).stdout == "old\n"
    write_in_place(Path(s2["worktree"], "helper.py"), EDITED)  # the restored file, edited
    again = imported_version(s2)
    assert again.stdout == "old\n" and "helper.py (modified)" in again.stderr


@pytest.mark.parametrize("flag", ["--skip-worktree", "--assume-unchanged"])
def test_index_flags_a_job_set_never_reach_a_linked_snapshot(tmp_path: Path, flag: str) -> None:
    """A job's `git update-index --skip-worktree` in S1 blinds S1's check of that file; S2,
    linked from S1 with a copy of S1's index, must not inherit the blind spot."""
    repo = make_app(tmp_path / "project")
    s1 = snapshot(repo)
    git(Path(s1["worktree"]), "update-index", flag, "helper.py")
    repo.write("other.py", "OTHER = 1\n")
    s2 = snapshot(repo)
    assert git(Path(s2["worktree"]), "ls-files", "-v", "helper.py") == "H helper.py\n"
    write_in_place(Path(s1["worktree"], "helper.py"), EDITED)  # through a link, if any

    started = imported_version(s2)

    assert started.stdout == "old\n", started.stderr
    assert record_of(s1["worktree"])["shareable"] is False


def test_a_worktree_whose_edit_a_job_hid_by_index_flags_is_not_reused(tmp_path: Path) -> None:
    repo = make_app(tmp_path / "project")
    first = snapshot(repo)
    git(Path(first["worktree"]), "update-index", "--assume-unchanged", "helper.py")
    sed = ["sed", "-i", "s/old/edited by a job/", "helper.py"]
    subprocess.run(sed, cwd=first["workdir"], check=True)

    second = snapshot(repo)  # the identical tree

    assert second["reused"] is False
    assert Path(second["worktree"], "helper.py").read_text() == "VERSION = 'old'\n"
    assert record_of(first["worktree"])["shareable"] is False


@pytest.mark.parametrize("flags", [["--skip-worktree"], ["--assume-unchanged", "--skip-worktree"]])
def test_a_hidden_edit_is_restored_with_the_other_changes(tmp_path: Path, flags: list[str]) -> None:
    """Once a job's start finds any change, the entries a job hid from git's diff are seen
    again and their files rewritten too."""
    repo = make_app(tmp_path / "project")
    snap = snapshot(repo)
    worktree = Path(snap["worktree"])
    for flag in flags:
        git(worktree, "update-index", flag, "helper.py")
    write_in_place(worktree / "helper.py", EDITED)
    (worktree / "conf/config.yaml").unlink()

    started = imported_version(snap)

    assert started.stdout == "old\n", started.stderr
    assert "helper.py (hidden from git's diff by an index flag)" in started.stderr
    assert git(worktree, "ls-files", "-v", "helper.py") == "H helper.py\n"


@pytest.mark.parametrize("flag", ["--skip-worktree", "--assume-unchanged"])
def test_an_edit_a_job_hid_by_an_index_flag_is_restored_at_the_next_start(
    tmp_path: Path, flag: str
) -> None:
    """git's diff never looks at an entry a job flagged, even when nothing else differs: the
    job-start check asks for the flags too (and still starts no Python when there are none)."""
    repo = make_app(tmp_path / "project")
    snap = snapshot(repo)
    worktree = Path(snap["worktree"])
    git(worktree, "update-index", flag, "helper.py")
    write_in_place(worktree / "helper.py", EDITED)

    started = imported_version(snap)

    assert started.stdout == "old\n", started.stderr
    assert "helper.py (hidden from git's diff by an index flag)" in started.stderr
    again = imported_version(snap)
    assert (again.stdout, again.stderr) == ("old\n", "")


@pytest.mark.parametrize(
    "stray", ["helper/__init__.py", "helper.cpython-311-x86_64-linux-gnu.so", "sub/__init__.py"]
)
def test_a_worktree_where_a_job_left_a_module_is_not_reused(tmp_path: Path, stray: str) -> None:
    """A package directory or an extension module takes precedence over `helper.py` on import:
    a module a job left in its worktree (untracked, ignored or not) would stand in for the
    snapshot's code in every job of a launch that reused the worktree."""
    repo = make_app(tmp_path / "project")
    repo.write(".gitignore", "*.so\n")
    repo.commit("ignore builds")
    first = snapshot(repo)
    left = Path(first["workdir"], stray)
    left.parent.mkdir(exist_ok=True)
    left.write_text("VERSION = 'left by a job'\n")

    second = snapshot(repo)  # the identical tree

    assert second["reused"] is False
    assert not Path(second["worktree"], stray).exists()
    assert record_of(first["worktree"])["shareable"] is False
    cache = Path(second["workdir"], "__pycache__")  # bytecode caches and outputs...
    cache.mkdir(exist_ok=True)
    (cache / "helper.cpython-311.pyc").write_bytes(b"")
    Path(second["workdir"], "results.csv").write_text("1\n")
    assert snapshot(repo)["reused"] is True  # ...do not stop reuse


# ---- submodules: git's diff sees them, so a job's change must be restored, not refused -----


def submodule_app(root: Path) -> tuple[Repo, str]:
    """The app with a submodule `lib` (libmod.LIB = 'old'; its clone has a later commit too)."""
    lib = Repo.create(root / "lib-origin")
    lib.write("libmod.py", "LIB = 'old'\n")
    recorded = lib.commit("lib")
    repo = make_app(root / "project")
    repo.git("submodule", "add", "-q", str(lib.path), "lib")
    repo.commit("with lib")
    Repo(repo.path / "lib").write("libmod.py", "LIB = 'later'\n")
    Repo(repo.path / "lib").commit("later")
    repo.git("-C", "lib", "checkout", "-q", recorded)
    return repo, recorded


def _submodule_file_edited(sub: Path) -> None:
    write_in_place(sub / "libmod.py", "LIB = 'edited by a job'\n")


def _submodule_moved(sub: Path) -> None:
    git(sub, "checkout", "-q", "-f", "--detach", "main")  # the clone's later commit


def _submodule_on_a_branch_with_a_commit(sub: Path) -> None:
    git(sub, "checkout", "-q", "-b", "a-job-s-branch")
    write_in_place(sub / "libmod.py", "LIB = 'committed by a job'\n")
    git(sub, "commit", "-q", "-am", "a job's")


@pytest.mark.parametrize(
    "tamper",
    [_submodule_file_edited, _submodule_moved, _submodule_on_a_branch_with_a_commit],
    ids=["file-edited", "head-moved", "on-a-branch"],
)
def test_a_job_s_change_inside_a_submodule_is_restored(tmp_path: Path, tamper: Any) -> None:
    repo, recorded = submodule_app(tmp_path)
    snap = {**repo.snapshot_json("--no-push", "--submodules"), "origin": str(repo.path)}
    sub = Path(snap["worktree"], "lib")
    tamper(sub)
    job = f"{sys.executable} -c 'import libmod; print(libmod.LIB)'"
    script = "\n".join([*setup_lines(snap), f"cd lib && {job}"])

    started = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)

    assert (started.returncode, started.stdout) == (0, "old\n"), started.stderr
    assert "lib (modified)" in started.stderr
    assert git(sub, "rev-parse", "HEAD").strip() == recorded
    assert (sub / "libmod.py").stat().st_mode & 0o222 == 0
    assert repo.git("-C", "lib", "rev-parse", "HEAD").strip() == recorded  # the user's clone
    assert Path(repo.path, "lib/libmod.py").read_text() == "LIB = 'old'\n"
