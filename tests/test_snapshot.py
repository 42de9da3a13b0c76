"""`git slurm-snapshot` on real repositories, run as the installed executable."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gitrepo import Repo, git, run_tool, user_state


def tree_of_copy(repo: Repo, tmp_path: Path) -> str:
    """What `git add -A` + `git write-tree` give in a copy of the repository."""
    copy = tmp_path / "copy"
    shutil.copytree(repo.path, copy, symlinks=True)
    git(copy, "add", "-A")
    tree: str = git(copy, "write-tree").strip()
    return tree


def listing(root: Path, skip: set[str]) -> dict[str, tuple[str, bool]]:
    """path -> (content or link target, executable) for every file under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames + [d for d in dirnames if Path(dirpath, d).is_symlink()]:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            if rel in skip or name == ".git":
                continue
            if p.is_symlink():
                out[rel] = ("link:" + os.readlink(p), False)
            else:
                out[rel] = (p.read_bytes().hex(), bool(p.stat().st_mode & stat.S_IXUSR))
    return out


def make_messy(repo: Repo) -> None:
    """Modified, deleted, untracked, ignored (at every level), odd names, modes, symlinks."""
    repo.write("pkg/model.py", "VERSION = 2\n")
    (repo.path / "README.md").unlink()
    repo.write("new module.py", "x = 1\n")
    repo.write("ünï/cödé.py", "y = 2\n")
    repo.write("weird\nname.txt", "newline in the name\n")
    repo.write("nested/.gitignore", "*.tmp\n")
    repo.write("nested/keep.txt", "kept\n")
    repo.write("nested/drop.tmp", "ignored by a nested .gitignore\n")
    repo.write("excluded.log", "ignored by info/exclude\n")
    (repo.path / ".git/info").mkdir(exist_ok=True)
    (repo.path / ".git/info/exclude").write_text("*.log\n")
    global_excludes = repo.path.parent / "global-excludes"
    global_excludes.write_text("*.secret\n")
    repo.git("config", "core.excludesFile", str(global_excludes))
    repo.write("token.secret", "ignored by core.excludesFile\n")
    repo.write("model.ckpt", "ignored by the top .gitignore\n")
    script = repo.write("run.sh", "#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    (repo.path / "link-to-model").symlink_to("pkg/model.py")
    (repo.path / "empty-dir").mkdir()


def test_tree_is_exactly_what_git_add_all_stages(repo: Repo, tmp_path: Path) -> None:
    make_messy(repo)
    expected = tree_of_copy(repo, tmp_path)
    snap = repo.snapshot_json()
    assert snap["tree"] == expected
    assert git(repo.path, "rev-parse", f"{snap['commit']}^{{tree}}").strip() == expected
    files = git(repo.path, "ls-tree", "-r", "--name-only", "-z", snap["commit"]).split("\0")
    assert "weird\nname.txt" in files and "ünï/cödé.py" in files and "run.sh" in files
    for ignored in ("nested/drop.tmp", "excluded.log", "token.secret", "model.ckpt"):
        assert ignored not in files
    assert "README.md" not in files


def test_worktree_files_equal_the_snapshot(repo: Repo, tmp_path: Path) -> None:
    make_messy(repo)
    snap = repo.snapshot_json()
    worktree = Path(snap["worktree"])
    checkout = tmp_path / "expected"
    checkout.mkdir()
    git(repo.path, "--work-tree", str(checkout), "checkout", snap["commit"], "--", ".")
    links = {"outputs", "multirun", ".submitit"}
    assert listing(worktree, links) == listing(checkout, set())
    assert (worktree / "run.sh").stat().st_mode & stat.S_IXUSR
    assert os.readlink(worktree / "link-to-model") == "pkg/model.py"


def test_user_state_is_byte_identical(repo: Repo) -> None:
    repo.write("stashed.py", "s = 1\n")
    repo.git("add", "stashed.py")
    repo.git("stash", "-q")
    make_messy(repo)
    repo.git("add", "new module.py")  # a partly staged index must survive as it is
    before = user_state(repo.path)
    repo.snapshot_json()
    repo.snapshot_json("--no-worktree")
    assert user_state(repo.path) == before


def test_clean_tree_snapshots_head_itself(repo: Repo) -> None:
    head = repo.git("rev-parse", "HEAD").strip()
    snap = repo.snapshot_json()
    assert snap["commit"] == head and snap["base"] == head and snap["dirty"] is False
    assert repo.git("rev-parse", snap["branch"]).strip() == head


def test_dirty_commit_has_head_as_parent_and_says_what_it_is(repo: Repo) -> None:
    repo.write("pkg/model.py", "VERSION = 3\n")
    head = repo.git("rev-parse", "HEAD").strip()
    snap = repo.snapshot_json("-m", "baseline run")
    assert snap["dirty"] is True and snap["base"] == head
    assert repo.git("rev-parse", f"{snap['commit']}^").strip() == head
    message = repo.git("log", "-1", "--format=%B", snap["commit"])
    for expected in (head, "Branch: main", "baseline run", "git slurm-snapshot --json -m"):
        assert expected in message
    reflog = repo.git("reflog", "show", snap["branch"])
    assert "git-slurm: snapshot of main" in reflog


def test_branch_name_is_local_time_stamp(repo: Repo) -> None:
    before = subprocess.run(
        ["date", "+%Y%m%d-%H%M%S"], capture_output=True, text=True, check=True
    ).stdout.strip()
    snap = repo.snapshot_json("--prefix", "exp/run")
    after = subprocess.run(
        ["date", "+%Y%m%d-%H%M%S"], capture_output=True, text=True, check=True
    ).stdout.strip()
    stamp = snap["branch"].removeprefix("exp/run-")
    assert before <= stamp[:15] <= after


def test_unborn_repository_gets_a_root_commit(tmp_path: Path) -> None:
    repo = Repo.create(tmp_path / "fresh", commit=False)
    repo.write("a.py", "a = 1\n")
    snap = repo.snapshot_json()
    assert snap["base"] is None and snap["dirty"] is True
    assert repo.git("rev-list", "--parents", "-n1", snap["commit"]).split() == [snap["commit"]]
    assert (Path(snap["worktree"]) / "a.py").read_text() == "a = 1\n"


def test_missing_identity_falls_back_to_a_sane_one(repo: Repo, hermetic_seal: Path) -> None:
    (hermetic_seal / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    repo.write("pkg/model.py", "VERSION = 9\n")
    snap = repo.snapshot_json()
    author = repo.git("log", "-1", "--format=%an <%ae>", snap["commit"]).strip()
    assert author.endswith(">") and "@" in author and author != "<>"


def test_same_second_snapshots_get_distinct_names(repo: Repo) -> None:
    names = {repo.snapshot_json("--no-worktree")["branch"] for _ in range(5)}
    assert len(names) == 5


def concurrent_snapshots(repo: Repo, argvs: list[list[str]]) -> list[dict[str, Any]]:
    """Start one `git slurm-snapshot --json` per argv at once; all must succeed."""
    procs = [
        subprocess.Popen(
            ["git", "slurm-snapshot", "--json", *argv],
            cwd=repo.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    return [json.loads(out) for out, _ in results]


@pytest.mark.parametrize("worktree", [False, True])
def test_twenty_concurrent_snapshots(repo: Repo, worktree: bool) -> None:
    repo.write("pkg/model.py", "VERSION = 20\n")
    args = [] if worktree else ["--no-worktree"]
    snaps = concurrent_snapshots(repo, [args] * 20)
    assert len({snap["branch"] for snap in snaps}) == 20
    if worktree:  # one tree: the first makes the worktree, the others reuse it
        assert len({snap["worktree"] for snap in snaps}) == 1
        assert sum(not snap["reused"] for snap in snaps) == 1
    fsck = subprocess.run(
        ["git", "fsck", "--full"], cwd=repo.path, capture_output=True, text=True, check=False
    )
    assert fsck.returncode == 0, fsck.stderr


def test_from_a_subdirectory_workdir_matches(repo: Repo) -> None:
    sub = repo.path / "pkg"
    snap = repo.snapshot_json(cwd=sub)
    assert snap["workdir"] == str(Path(snap["worktree"]) / "pkg")
    outputs = Path(snap["workdir"]) / "outputs"
    assert outputs.is_symlink() and os.readlink(outputs) == str(sub / "outputs")
    assert (sub / "outputs").is_dir()


def test_from_a_linked_worktree(repo: Repo, tmp_path: Path) -> None:
    other = tmp_path / "other"
    repo.git("worktree", "add", "-q", "-b", "feature", str(other))
    (other / "pkg/model.py").write_text("VERSION = 'feature'\n")
    snap = Repo(other).snapshot_json()
    assert (Path(snap["worktree"]) / "pkg/model.py").read_text() == "VERSION = 'feature'\n"
    assert Path(snap["worktree"]).parent == repo.path / ".git" / "slurm-snapshots"
    assert os.readlink(Path(snap["worktree"]) / "outputs") == str(other / "outputs")
    assert "Branch: feature" in repo.git("log", "-1", "--format=%B", snap["commit"])


def test_git_dir_and_work_tree_are_honoured(repo: Repo, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    repo.write("pkg/model.py", "VERSION = 'env'\n")
    env = {"GIT_DIR": str(repo.path / ".git"), "GIT_WORK_TREE": str(repo.path)}
    res = run_tool("slurm-snapshot", "--json", cwd=elsewhere, env=env)
    assert res.returncode == 0, res.stderr
    assert (Path(res.json()["worktree"]) / "pkg/model.py").read_text() == "VERSION = 'env'\n"


def test_worktree_is_detached_locked_and_hooks_do_not_run(repo: Repo) -> None:
    marker = repo.path.parent / "hook-ran"
    hook = repo.path / ".git/hooks/post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    snap = repo.snapshot_json()
    assert not marker.exists()
    porcelain = repo.git("worktree", "list", "--porcelain")
    block = next(b for b in porcelain.split("\n\n") if snap["worktree"] in b)
    assert "detached" in block
    assert f"locked git-slurm snapshot {snap['branch']} of {repo.path}" in block
    repo.git("switch", "-q", snap["branch"])  # the branch stays free to check out


def test_links_create_missing_targets(repo: Repo) -> None:
    """(A link path holding tracked files is refused: tests/test_odd_repos.py.)"""
    repo.write("logs/old.txt", "untracked log\n")
    snap = repo.snapshot_json("--link", "logs", "--link", "ckpt/run1")
    wt = Path(snap["worktree"])
    assert os.readlink(wt / "logs") == str(repo.path / "logs")
    assert (repo.path / "logs/old.txt").read_text() == "untracked log\n"
    assert (repo.path / "ckpt/run1").is_dir() and (wt / "ckpt/run1").is_symlink()
    (wt / "ckpt/run1/weights.bin").write_text("w")
    assert (repo.path / "ckpt/run1/weights.bin").read_text() == "w"
    assert {ln["target"] for ln in snap["links"]} == {
        str(repo.path / "logs"),
        str(repo.path / "ckpt/run1"),
    }


@pytest.mark.parametrize(
    "bad", ["/tmp/x", "../outside", "pkg/../../x", ".", ".git/hooks", "escape/inner"]
)
def test_bad_link_paths_are_refused_and_change_nothing(
    repo: Repo, bad: str, tmp_path: Path
) -> None:
    (repo.path / "escape").symlink_to(tmp_path)
    before = user_state(repo.path)
    branches = repo.git("branch", "--list")
    res = repo.snapshot("--link", bad)
    assert res.returncode == 2
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
    assert res.stdout == ""
    assert repo.git("branch", "--list") == branches
    assert user_state(repo.path) == before
    assert not (repo.path / ".git/slurm-snapshots").exists() or not any(
        (repo.path / ".git/slurm-snapshots").iterdir()
    )


def test_unchanged_tree_reuses_its_worktree(repo: Repo) -> None:
    repo.write("pkg/model.py", "VERSION = 'reuse'\n")
    first = repo.snapshot_json()
    second = repo.snapshot_json()
    assert second["reused"] is True and first["reused"] is False
    assert second["worktree"] == first["worktree"] and second["branch"] != first["branch"]
    assert second["commit"] == first["commit"]  # same base and tree: the same commit
    repo.write("pkg/model.py", "VERSION = 'changed'\n")
    third = repo.snapshot_json()
    assert third["reused"] is False and third["worktree"] != first["worktree"]


def test_no_worktree_makes_the_branch_only(repo: Repo) -> None:
    snap = repo.snapshot_json("--no-worktree")
    assert snap["worktree"] is None and snap["workdir"] is None and snap["links"] == []
    assert repo.git("rev-parse", snap["branch"]).strip() == snap["commit"]
    assert not (repo.path / ".git/slurm-snapshots").exists()


def test_git_config_defaults(repo: Repo, tmp_path: Path) -> None:
    repo.git("config", "slurm.branchPrefix", "cfg")
    repo.git("config", "--add", "slurm.link", "results")
    repo.git("config", "--add", "slurm.link", "logs")
    repo.git("config", "slurm.worktreeDir", str(tmp_path / "wts"))
    snap = repo.snapshot_json()
    assert snap["branch"].startswith("cfg-")
    assert Path(snap["worktree"]).parent == tmp_path / "wts"
    assert sorted(Path(ln["path"]).name for ln in snap["links"]) == ["logs", "results"]


def test_worktree_dir_option_expands_the_home_directory(repo: Repo, hermetic_seal: Path) -> None:
    """`--worktree-dir=~/snaps` reaches us unexpanded (no shell expands `~` after `=`); it
    means the same place as `slurm.worktreeDir = ~/snaps` does."""
    snap = repo.snapshot_json("--worktree-dir=~/snaps")
    assert Path(snap["worktree"]).parent == hermetic_seal / "snaps"
    assert not (repo.path / "~").exists()


def test_json_is_exactly_one_object(repo: Repo) -> None:
    res = repo.snapshot("--json")
    assert res.returncode == 0
    data = res.json()
    assert set(data) >= {
        "branch",
        "commit",
        "base",
        "dirty",
        "worktree",
        "workdir",
        "links",
        "pushed",
        "reused",
    }
    assert res.stdout.count("\n") == 1


def test_push_to_a_remote(repo: Repo, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    repo.git("remote", "add", "origin", str(remote))
    snap = repo.snapshot_json()
    assert snap["pushed"] == "origin"
    assert git(remote, "rev-parse", snap["branch"]).strip() == snap["commit"]


def test_push_failures(repo: Repo, tmp_path: Path) -> None:
    repo.git("remote", "add", "origin", "https://user:hunter2@127.0.0.1:9/none.git")
    default = repo.snapshot("--json")  # a default push that fails only warns
    assert default.returncode == 0, default.stderr
    assert default.json()["pushed"] is None and "warning" in default.stderr
    assert "hunter2" not in default.stderr + default.stdout
    branches = repo.git("branch", "--list")
    explicit = repo.snapshot("--push")
    assert explicit.returncode == 1 and explicit.stderr.startswith("error: push of ")
    assert "hunter2" not in explicit.stderr
    assert repo.git("branch", "--list") == branches  # the failed snapshot left no branch
    url = "https://user:hunter2@127.0.0.1:9/none.git"
    repo.write("pkg/model.py", "VERSION = 'a new commit is written before the push'\n")
    as_remote = repo.snapshot("--remote", url, "-m", "no secrets in here")
    assert as_remote.returncode == 2 and "hunter2" not in as_remote.stderr
    # neither the commit messages of the objects written meanwhile, nor any record, keep it
    objects = repo.git(
        "cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype)"
    )
    commits = [line.split()[0] for line in objects.splitlines() if line.endswith(" commit")]
    assert all("hunter2" not in repo.git("cat-file", "commit", c) for c in commits)
    records = list((repo.path / ".git").rglob("git-slurm.json"))
    assert records and all("hunter2" not in r.read_text() for r in records)


def test_no_remote_is_skipped_silently_unless_the_push_was_asked_for(repo: Repo) -> None:
    res = repo.snapshot("--json")
    assert res.returncode == 0 and res.json()["pushed"] is None
    assert res.stderr == "" and res.json()["notes"] == []
    repo.git("remote", "add", "upstream", str(repo.path))
    noted = repo.snapshot("--json")  # a remote exists, but not the one git push would use
    assert noted.json()["notes"] == ["not pushed: the repository has no remote 'origin'"]
    repo.git("remote", "remove", "upstream")
    before = user_state(repo.path)
    asked = repo.snapshot("--push")
    assert asked.returncode == 2 and asked.stderr == (
        "error: cannot push: the repository has no remote 'origin' "
        "(add one with git remote add, or choose one with --remote)\n"
    )
    assert user_state(repo.path) == before


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--prefix", "bad..name"], 2),
        (["--prefix", ""], 2),
        (["--no-such-switch"], 2),
        (["--push", "--no-push"], 2),
        (["--remote", "nowhere", "--push"], 2),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(repo: Repo, args: list[str], code: int) -> None:
    repo.write("pkg/model.py", "VERSION = 'x'\n")
    before = user_state(repo.path)
    branches = repo.git("branch", "--list")
    res = repo.snapshot(*args)
    assert res.returncode == code, res.stderr
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert repo.git("branch", "--list") == branches
    assert user_state(repo.path) == before


def test_not_a_repository_and_bare(tmp_path: Path) -> None:
    res = run_tool("slurm-snapshot", cwd=tmp_path)
    assert res.returncode == 3 and res.stderr.startswith("error: not a git repository")
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    res = run_tool("slurm-snapshot", cwd=bare)
    assert res.returncode == 3 and "bare repository" in res.stderr
    assert res.stderr.count("\n") == 1


def test_unwritable_worktree_dir(repo: Repo, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    res = repo.snapshot("--worktree-dir", str(blocker / "sub"))
    assert res.returncode == 2 and res.stderr.startswith("error: cannot create worktree dir")


def test_large_untracked_files_are_refused(repo: Repo) -> None:
    repo.git("config", "slurm.maxUntrackedSize", "1k")
    repo.write("big.bin", "x" * 4096)
    res = repo.snapshot()
    assert res.returncode == 2 and "big.bin" in res.stderr and ".gitignore" in res.stderr
    repo.write(".gitignore", "big.bin\n")
    assert repo.snapshot().returncode == 0


def test_mid_merge_is_snapshotted_as_it_is(repo: Repo) -> None:
    repo.git("switch", "-q", "-c", "other")
    repo.write("pkg/model.py", "VERSION = 'other'\n")
    repo.commit("other")
    repo.git("switch", "-q", "main")
    repo.write("pkg/model.py", "VERSION = 'main'\n")
    repo.commit("main")
    repo.git("merge", "other", check=False)
    assert (repo.path / ".git/MERGE_HEAD").exists()
    before = user_state(repo.path)
    res = repo.snapshot("--json")
    assert res.returncode == 0, res.stderr
    assert "middle of a merge" in res.stderr
    content = (Path(res.json()["worktree"]) / "pkg/model.py").read_text()
    assert content == (repo.path / "pkg/model.py").read_text() and "<<<<<<<" in content
    assert user_state(repo.path) == before


def test_help_opens_the_man_page(repo: Repo) -> None:
    res = run_tool(
        "slurm-snapshot", "--help", cwd=repo.path, env={"MANPAGER": "cat", "PAGER": "cat"}
    )
    assert res.returncode == 0, res.stderr
    assert "GIT-SLURM-SNAPSHOT(1)" in res.stdout and "EXIT STATUS" in res.stdout
    short = subprocess.run(
        ["git-slurm-snapshot", "-h"], capture_output=True, text=True, cwd=repo.path, check=False
    )
    assert short.returncode == 0 and "--worktree-dir" in short.stdout


def test_racily_clean_edit_is_captured(repo: Repo, tmp_path: Path) -> None:
    """An edit with the same size, mtime and ctime second as the index entry is only caught by
    git's racy-clean check, which compares entries with the index file's own mtime: the
    private index copy must keep that mtime."""
    model = repo.path / "pkg/model.py"
    past = 1_000_000_000
    for _ in range(5):  # the add and the edit must fall in the same ctime second
        model.write_text("VERSION = 1\n")
        os.utime(model, (past, past))
        repo.git("add", "pkg/model.py")
        added_ctime = int(model.stat().st_ctime)
        model.write_text("VERSION = 7\n")  # same size
        os.utime(model, (past, past))
        if int(model.stat().st_ctime) == added_ctime:
            break
    os.utime(repo.path / ".git/index", (past, past))
    expected = tree_of_copy(repo, tmp_path)
    snap = repo.snapshot_json()
    assert snap["tree"] == expected
    assert (Path(snap["worktree"]) / "pkg/model.py").read_text() == "VERSION = 7\n"


def test_concurrent_snapshots_of_different_commits_never_overwrite(repo: Repo) -> None:
    repo.write("pkg/model.py", "VERSION = 'race'\n")
    snaps = concurrent_snapshots(repo, [["--no-worktree", "-m", f"run {i}"] for i in range(10)])
    assert len({s["commit"] for s in snaps}) == 10
    for snap in snaps:  # each branch still points at the commit its own process made
        assert repo.git("rev-parse", snap["branch"]).strip() == snap["commit"]


LOADS_LIBGIT2 = """
import sys
from git_slurm.cli.snapshot import main
status = main(["git-slurm-snapshot", "--no-push"])
print("pygit2" in sys.modules)
sys.exit(status)
"""


def test_only_a_new_commit_loads_libgit2(repo: Repo) -> None:
    """Loading pygit2 costs more than all git calls of a reused snapshot: a clean tree, or a
    tree an earlier snapshot already committed, must not load it; a new commit does."""

    def loads_libgit2() -> bool:
        done = subprocess.run(
            [sys.executable, "-c", LOADS_LIBGIT2], cwd=repo.path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.split()[-1] == "True"

    assert not loads_libgit2()  # clean: HEAD's own commit
    repo.write("pkg/model.py", "VERSION = 3\n")
    assert loads_libgit2()  # dirty: a new commit
    assert not loads_libgit2()  # the same dirty tree again: that commit, reused


def test_a_file_name_that_is_not_utf8_is_captured(repo: Repo) -> None:
    """git's output is bytes; a Latin-1 name makes the round trip through our own git calls
    (status out, update-index in) and lands in the worktree under the same bytes."""
    name = b"caf\xe9.txt"
    with open(os.path.join(os.fsencode(repo.path), name), "wb") as f:
        f.write(b"latin-1 name\n")
    before = user_state(repo.path)
    snap = repo.snapshot_json("--no-push")
    listed = subprocess.run(
        ["git", "ls-tree", "-r", "-z", "--name-only", snap["commit"]],
        cwd=repo.path,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    assert name in listed
    with open(os.path.join(os.fsencode(snap["worktree"]), name), "rb") as f:
        assert f.read() == b"latin-1 name\n"
    assert user_state(repo.path) == before
