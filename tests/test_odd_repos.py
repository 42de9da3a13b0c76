"""Repositories as clusters have them (issue 13): paths that are not UTF-8, branch prefixes git
cannot store, checkouts owned by someone else, link paths that are symlinks to scratch, one
worktree dir shared by several repositories, git configuration given on the command line or in
the environment, and remotes chosen the way `git push` chooses them.

Each works as git does, or fails with one `error:` line, a non-zero status and the user's state
unchanged.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import pytest
from gitrepo import Repo, Result, run_tool, user_state
from launcher_apps.support import app_command, make_app_repo, results
from test_odd_input import (
    SNAPSHOT_ON,
    assert_one_error_line,
    finished_job,
    registered_worktrees,
    snapshot_branches,
    snapshot_json_unchanged,
)

from git_slurm import snapshot as snapshot_module
from git_slurm.branches import create_snapshot_branch
from git_slurm.records import add_jobs, snapshot_worktrees, write_record
from git_slurm.repo import discover
from git_slurm.snapshot import SnapshotOptions, take_snapshot

LATIN1 = os.fsdecode(b"caf\xe9")  # a Latin-1 directory name: not valid UTF-8


def run_bytes_safe(argv: list[str], cwd: Path, env: Optional[dict[str, str]] = None) -> Result:
    """Run a command whose output may hold paths that are not UTF-8 (kept as surrogates)."""
    done = subprocess.run(
        argv,
        cwd=cwd,
        capture_output=True,
        encoding="utf-8",
        errors="surrogateescape",
        env=dict(os.environ, **(env or {})),
        timeout=300,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def age_snapshots(repo: Repo, days: float) -> None:
    """Make every snapshot worktree of `repo` look launched and last used `days` ago, with no
    job recorded."""
    for admin, record in snapshot_worktrees(repo.path / ".git"):
        record.jobs = []
        record.last_used = record.created = time.time() - days * 86400
        record.launches = [replace(launch, time=record.created) for launch in record.launches]
        write_record(admin, record)


# ---- 13.1: a checkout whose path is not UTF-8 ------------------------------------------------


def test_a_checkout_whose_path_is_not_utf8_works_end_to_end(tmp_path: Path) -> None:
    """Snapshot (dirty and clean), launch, reminder and gc, in a directory named `caf\\xe9`."""
    repo, app = make_app_repo(tmp_path / LATIN1 / "project")
    assert run_tool("slurm-snapshot", "--install-hooks", cwd=repo.path).returncode == 0

    (app / "late.py").write_text('VERSION = "edited"\n', encoding="utf-8")
    dirty = snapshot_json_unchanged(repo, "--no-push")
    assert dirty["dirty"] and dirty["worktree"].startswith(str(repo.path))
    message = subprocess.run(
        ["git", "cat-file", "commit", dirty["commit"]], cwd=repo.path, capture_output=True
    ).stdout
    assert b"Checkout: " + os.fsencode(repo.path) + b"\n" in message  # the path's own bytes
    (app / "late.py").unlink()
    repo.git("checkout", "--", "exp/late.py")
    clean = snapshot_json_unchanged(repo, "--no-push")
    assert not clean["dirty"]
    for snap in (dirty, clean):
        assert Path(snap["worktree"], "exp", "my_app.py").is_file()
    assert len(snapshot_worktrees(repo.path / ".git")) == 2  # both recorded, none half-made

    launched = run_bytes_safe(
        app_command(sys.executable, "seed=0", "hydra/launcher=submitit_local", *SNAPSHOT_ON),
        cwd=app,
    )
    assert launched.returncode == 0, launched.stderr
    (job,) = results(app / "multirun")
    assert job["cwd"].startswith(f"{repo.path}{os.sep}.git{os.sep}slurm-snapshots{os.sep}")

    # the reminder names the stale snapshots (its job's end not yet known to the cache) ...
    age_snapshots(repo, days=30)
    switched = run_bytes_safe(["git", "switch", "-c", "feature"], cwd=repo.path)
    assert switched.returncode == 0, switched.stderr
    assert "git-slurm: 3 snapshot worktrees older than 7d" in switched.stderr, switched.stderr
    # ... and gc removes them
    gc = run_bytes_safe(["git", "slurm-gc", "--older-than", "1d", "--json"], cwd=repo.path)
    assert gc.returncode == 0, gc.stderr
    assert registered_worktrees(repo) == [str(repo.path)]
    assert not list((repo.path / ".git" / "slurm-snapshots").iterdir())


def test_a_job_record_of_a_non_utf8_worktree_round_trips(tmp_path: Path) -> None:
    """The launcher records its jobs in the worktree's record and lock reason."""
    repo = Repo.create(tmp_path / LATIN1)
    snap = snapshot_json_unchanged(repo, "--no-push")
    record = add_jobs(Path(snap["worktree"]), [finished_job()])
    assert record.origin == str(repo.path)
    (admin,) = [admin for admin, _ in snapshot_worktrees(repo.path / ".git")]
    reason = (admin / "locked").read_bytes()
    assert reason.startswith(b"git-slurm snapshot %s of %s; jobs: " % (
        snap["branch"].encode(), os.fsencode(repo.path)))  # fmt: skip


def test_a_non_utf8_message_is_kept_as_bytes(repo: Repo) -> None:
    repo.write("pkg/model.py", "VERSION = 2\n")
    before = user_state(repo.path)
    made = run_bytes_safe(
        ["git", "slurm-snapshot", "--json", "--no-push", "-m", os.fsdecode(b"r\xe9sum\xe9")],
        cwd=repo.path,
    )
    assert made.returncode == 0, made.stderr
    assert user_state(repo.path) == before
    commit = made.stdout.split('"commit": "')[1][:40]
    raw = subprocess.run(
        ["git", "cat-file", "commit", commit], cwd=repo.path, capture_output=True
    ).stdout
    assert b"\n\nr\xe9sum\xe9\n\n" in raw
    assert snapshot_branches(repo)


def test_a_non_utf8_path_is_printed_whatever_the_locale_says(tmp_path: Path) -> None:
    """Outside the C locale Python's stdio refuses such a path; git prints its bytes, so do we
    (before, the snapshot was made and then reported as an internal error, exit 1)."""
    repo = Repo.create(tmp_path / LATIN1)
    strict = {"PYTHONIOENCODING": "utf-8:strict"}
    made = run_bytes_safe(["git", "slurm-snapshot", "--no-push"], cwd=repo.path, env=strict)
    assert made.returncode == 0, made.stderr
    assert f"worktree {repo.path}{os.sep}.git" in made.stdout
    gc = run_bytes_safe(["git", "slurm-gc", "--dry-run"], cwd=repo.path, env=strict)
    assert gc.returncode == 0 and f"would keep {repo.path}" in gc.stdout, gc.stderr
    # the reminder's one line about an error naming such a path never fails the checkout
    nowhere = {**strict, "GIT_DIR": str(repo.path / "nope")}
    hook = run_bytes_safe(
        [sys.executable, "-m", "git_slurm.cli.post_checkout", "0", "0", "1"],
        cwd=repo.path,
        env=nowhere,
    )
    assert hook.returncode == 0, hook.stderr
    assert hook.stdout == f"git-slurm: no reminder: not a git repository: '{repo.path / 'nope'}'\n"


# ---- 13.2: branch prefixes git cannot store ---------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        ("main/exp", "the branch 'main' exists, and git cannot have a branch 'main' and branches"),
        ("main/a/b", "the branch 'main' exists"),
        ("x" * 240, "too long; a snapshot branch's name would be a file name of 267 bytes"),
        ("ok/" + "y" * 240, "too long"),
        ("-x", "it must make a valid branch name"),  # a ref, but no branch git accepts
    ],
)
def test_a_prefix_git_cannot_store_is_refused_at_once(repo: Repo, prefix: str, reason: str) -> None:
    """Before: ~30 s of trying 10000 names, then "more than 10000 snapshot branches in one
    second", exit 1."""
    repo.write("pkg/model.py", "VERSION = 2\n")  # dirty: a commit would be written first
    before = user_state(repo.path)
    refused = repo.snapshot("--prefix", prefix)
    assert_one_error_line(refused)
    assert refused.returncode == 2 and reason in refused.stderr, refused.stderr
    assert user_state(repo.path) == before
    assert repo.git("for-each-ref", "--format=%(refname)", "refs/heads/").split() == [
        "refs/heads/main"
    ]
    assert registered_worktrees(repo) == [str(repo.path)]


# ---- 13.3: git's own reason, passed on -------------------------------------------------------

OTHER_UID = 12345


def owned_by_another_user(path: Path, uid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.lchown(name, uid, uid)


def test_a_checkout_owned_by_another_user_says_git_s_reason_and_advice(repo: Repo) -> None:
    """A lab's shared directory, or a root container on a bind mount: git refuses the checkout
    of another uid ("dubious ownership"); before, this was "not a git repository"."""
    repo.write("pkg/model.py", "VERSION = 2\n")
    before = user_state(repo.path)
    owned_by_another_user(repo.path, OTHER_UID)
    try:
        for tool in ("slurm-snapshot", "slurm-gc"):
            refused = run_tool(tool, cwd=repo.path / "pkg")
            assert_one_error_line(refused)
            assert refused.returncode == 3
            assert refused.stderr == (
                f"error: detected dubious ownership in repository at '{repo.path}'; To add an "
                "exception for this directory, call: "
                f"git config --global --add safe.directory {repo.path}\n"
            )
        # trusted for one command (`git -c safe.directory=...`): every git call of ours too
        once = run_tool(
            "-c", f"safe.directory={repo.path}", "slurm-snapshot", "--json", "--no-push",
            "--no-worktree", cwd=repo.path,
        )  # fmt: skip
        assert once.returncode == 0, once.stderr
        # git's advice, taken, is enough: every git call of ours honours it
        trusted = run_tool(
            "config", "--global", "--add", "safe.directory", str(repo.path), cwd=repo.path
        )
        assert trusted.returncode == 0
        snap = run_tool("slurm-snapshot", "--json", "--no-push", cwd=repo.path)
        assert snap.returncode == 0, snap.stderr
        assert Path(snap.json()["worktree"], "pkg", "model.py").read_text() == "VERSION = 2\n"
    finally:
        owned_by_another_user(repo.path, 0)
    assert user_state(repo.path) == before


def test_a_remote_owned_by_another_user_says_git_s_reason(repo: Repo, tmp_path: Path) -> None:
    """Before, the error was git's last line: "and the repository exists."."""
    remote = tmp_path / "shared.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    owned_by_another_user(remote, OTHER_UID)
    repo.git("remote", "add", "origin", str(remote))
    before = user_state(repo.path)
    refused = repo.snapshot("--push")
    assert_one_error_line(refused)
    assert refused.stderr.startswith("error: push of slurm-job-") and refused.stderr.endswith(
        f" to origin failed: detected dubious ownership in repository at '{remote}'; To add an "
        f"exception for this directory, call: git config --global --add safe.directory {remote}; "
        "Could not read from remote repository. Please make sure you have the correct access "
        "rights and the repository exists.\n"
    ), refused.stderr
    assert user_state(repo.path) == before
    assert snapshot_branches(repo) == []


@pytest.mark.parametrize(
    ("breakage", "said"),
    [
        ("[core\n", "error: bad config line 6 in file .git/config\n"),
        (
            "[core]\n\trepositoryformatversion = 7\n",
            "error: Expected git repo version <= 1, found 7\n",
        ),
    ],
)
def test_a_repository_git_refuses_says_why(repo: Repo, breakage: str, said: str) -> None:
    config = repo.path / ".git" / "config"
    before, kept = user_state(repo.path), config.read_bytes()
    with config.open("a") as handle:
        handle.write(breakage)
    # as the launcher runs it: `git slurm-snapshot` would meet git's own refusal first
    refused = run_bytes_safe(["git-slurm-snapshot"], cwd=repo.path)
    config.write_bytes(kept)
    assert_one_error_line(refused)
    assert refused.stderr == said
    assert user_state(repo.path) == before


def test_git_dir_naming_nothing_says_so(repo: Repo) -> None:
    refused = run_tool("slurm-snapshot", cwd=repo.path, env={"GIT_DIR": str(repo.path / "nope")})
    assert_one_error_line(refused)
    assert refused.stderr == f"error: not a git repository: '{repo.path / 'nope'}'\n"


# ---- 11.5, 11.6, 13.5: link paths hold outputs, never code ---------------------------------


def assert_refused_unchanged(repo: Repo, *args: str, said: str) -> None:
    """`git slurm-snapshot ARGS` is refused with `said`; nothing of the user's changed, and no
    branch or worktree was made."""
    before = user_state(repo.path)
    refused = repo.snapshot(*args)
    assert_one_error_line(refused)
    assert refused.returncode == 2 and said in refused.stderr, refused.stderr
    assert user_state(repo.path) == before
    assert snapshot_branches(repo) == []
    assert registered_worktrees(repo) == [str(repo.path)]


@pytest.mark.parametrize(
    ("link", "said"),
    [
        ("pkg/model.py", "link path 'pkg/model.py' is the tracked file 'pkg/model.py'"),
        ("pkg", "link path 'pkg' holds 2 tracked files (pkg/__init__.py, pkg/model.py)"),
        (".", "leaves the repository"),
    ],
)
def test_a_link_path_that_is_tracked_code_is_refused(repo: Repo, link: str, said: str) -> None:
    """Before: the snapshot's copy was replaced by a link to the live file."""
    repo.write("pkg/model.py", "VERSION = 2\n")
    assert_refused_unchanged(repo, "--link", link, said=said)


def test_a_tracked_empty_placeholder_under_a_link_path_is_no_code(repo: Repo) -> None:
    """`outputs/.gitkeep`, `multirun/.gitignore` (tracked so the directory exists, or to ignore
    what lands there) hold no code: the default links still work, and the worktree's paths are
    the links. Any other tracked file beside them is code, and refused."""
    repo.write("outputs/.gitkeep", "")
    repo.write("multirun/.gitignore", "*\n!.gitignore\n")
    repo.write(".submitit/.keep", "")
    repo.write("outputs/helper.py", "X = 1\n")
    repo.git("add", "-f", "outputs", "multirun", ".submitit")  # the fixture ignores them
    repo.commit("placeholders and code under outputs")
    assert_refused_unchanged(
        repo,
        "--link",
        "outputs",
        said="link path 'outputs' holds 1 tracked file (outputs/helper.py)",
    )
    repo.git("rm", "-q", "outputs/helper.py")
    repo.commit("placeholders only")
    snap = snapshot_json_unchanged(repo, "--no-push")
    worktree = Path(snap["worktree"])
    assert os.readlink(worktree / "outputs") == str(repo.path / "outputs")
    assert os.readlink(worktree / "multirun") == str(repo.path / "multirun")


def test_link_paths_are_never_snapshotted_and_a_note_says_what_to_ignore(tmp_path: Path) -> None:
    """A repository without a .gitignore: before, the previous launch's pickles and logs were
    committed into the next snapshot."""
    repo = Repo.create(tmp_path / "project", commit=False)
    repo.write("train.py", "print('train')\n")
    repo.commit("code")
    repo.write("multirun/2026-12-01/0/result.pkl", "pickle")
    repo.write(".submitit/1/log.out", "log")
    repo.write("lib/outputs/kept.py", "# not a link path: code\n")
    snap = snapshot_json_unchanged(repo, "--no-push")
    tree = repo.git("ls-tree", "-r", "--name-only", snap["commit"]).split()
    assert tree == ["lib/outputs/kept.py", "train.py"]
    assert snap["notes"] == [
        "left out of the snapshot (link paths hold outputs, not code): multirun, .submitit; "
        "git does not ignore them: add /multirun/ /.submitit/ to .gitignore"
    ]
    repo.write(".gitignore", "/multirun/\n/.submitit/\n")  # what the note says
    assert snapshot_json_unchanged(repo, "--no-push")["notes"] == []


def test_link_paths_that_are_symlinks_to_scratch_are_allowed(repo: Repo, tmp_path: Path) -> None:
    """`multirun` -> scratch, as clusters have it: the worktree's link points at the checkout's
    own `multirun`, so jobs write to scratch, and nothing is created outside the repository
    (a dangling one stays dangling). A path *under* a symlink out of the repository is
    still refused: its target directory would be made there."""
    scratch = tmp_path / "scratch"
    (scratch / "multirun").mkdir(parents=True)
    (repo.path / "multirun").symlink_to(scratch / "multirun")
    (repo.path / "outputs").symlink_to(scratch / "outputs-not-yet")  # dangling
    (repo.path / "data").symlink_to(scratch)
    snap = snapshot_json_unchanged(repo, "--no-push")
    worktree = Path(snap["worktree"])
    assert os.readlink(worktree / "multirun") == str(repo.path / "multirun")
    assert os.readlink(worktree / "outputs") == str(repo.path / "outputs")
    assert sorted(p.name for p in scratch.iterdir()) == ["multirun"]
    assert not list((scratch / "multirun").iterdir())

    before = user_state(repo.path)
    refused = repo.snapshot("--link", "data/out")
    assert_one_error_line(refused)
    assert f"lies in {scratch}, outside the repository" in refused.stderr
    assert user_state(repo.path) == before
    assert sorted(p.name for p in scratch.iterdir()) == ["multirun"]


def test_overlapping_link_paths_are_refused_before_anything_is_made(repo: Repo) -> None:
    """Before: `outputs/sub` was made in the checkout, then refused."""
    assert_refused_unchanged(
        repo, "--link", "outputs", "--link", "outputs/sub/", said="'outputs/sub' lies inside"
    )
    assert not (repo.path / "outputs").exists()


def test_a_worktree_dir_in_the_work_tree_is_left_out_or_refused(repo: Repo) -> None:
    """Before, `--worktree-dir .` recorded earlier snapshots as gitlinks in later ones."""
    assert_refused_unchanged(repo, "--worktree-dir", ".", said="is the work tree itself")
    assert_refused_unchanged(repo, "--worktree-dir", "pkg", said="holds tracked files")
    inside = repo.snapshot_json("--no-push", "--worktree-dir", "snaps")
    assert Path(inside["worktree"]).parent == repo.path / "snaps"
    repo.write("pkg/model.py", "VERSION = 2\n")
    for where in (["--worktree-dir", "snaps"], []):  # also a snapshot made elsewhere
        snap = repo.snapshot_json("--no-push", *where)
        tree = repo.git("ls-tree", "-r", "--name-only", snap["commit"]).split()
        assert tree == [".gitignore", "README.md", "pkg/__init__.py", "pkg/model.py"]


# ---- 13.4: one worktree dir shared by several repositories ---------------------------------


def test_repositories_sharing_a_worktree_dir_never_collide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`git config --global slurm.worktreeDir ~/scratch/snapshots`: two repositories snapshot
    in the same second (the clock pinned, in-process) and so make the same branch name. Before:
    `fatal: '.../slurm-job-20261201-221250' already exists`."""
    shared = tmp_path / "scratch" / "snapshots"
    pinned = functools.partial(create_snapshot_branch, now=dt.datetime(2026, 12, 1, 22, 12, 50))
    monkeypatch.setattr(snapshot_module, "create_snapshot_branch", pinned)
    repos = [Repo.create(tmp_path / name / "project") for name in ("alice", "bob")]
    made = []
    for repo in repos:
        repo.write("pkg/model.py", f"VERSION = {repo.path.parent.name!r}\n")
        before = user_state(repo.path)
        options = SnapshotOptions(prefix="slurm-job", links=["outputs"], worktree_dir=shared)
        made.append(take_snapshot(discover(repo.path), options))
        assert user_state(repo.path) == before
    assert [str(snap.branch) for snap in made] == ["slurm-job-20261201-221250"] * 2
    assert [snap.worktree for snap in made] == [
        shared / "slurm-job-20261201-221250",
        shared / "slurm-job-20261201-221250.2",
    ]
    for repo, snap in zip(repos, made, strict=True):
        assert snap.worktree is not None
        text = (snap.worktree / "pkg" / "model.py").read_text()
        assert text == f"VERSION = {repo.path.parent.name!r}\n"

    # gc of one repository never touches the other's worktree, even in the same directory
    alice, bob = repos
    for repo in repos:
        age_snapshots(repo, days=30)
    gc = run_tool("slurm-gc", "--older-than", "1d", cwd=alice.path)
    assert gc.returncode == 0, gc.stderr
    assert registered_worktrees(alice) == [str(alice.path)]
    assert registered_worktrees(bob) == [str(bob.path), str(made[1].worktree)]
    assert (shared / "slurm-job-20261201-221250.2" / "pkg" / "model.py").is_file()
    assert [p.name for p in shared.iterdir()] == ["slurm-job-20261201-221250.2"]
    gc = run_tool("slurm-gc", "--older-than", "1d", cwd=bob.path)
    assert gc.returncode == 0, gc.stderr
    assert registered_worktrees(bob) == [str(bob.path)]
    assert list(shared.iterdir()) == []


# ---- 13.6: git's configuration, the way git reads it ---------------------------------------


def branch_and_author(res: Result, repo: Repo) -> tuple[str, str]:
    assert res.returncode == 0, res.stderr
    snap = res.json()
    return snap["branch"], repo.git("log", "-1", "--format=%an <%ae>", snap["commit"]).strip()


def test_git_dash_c_and_git_config_count_are_honoured(repo: Repo) -> None:
    """Before, both were dropped from the tool's own git calls (and libgit2 never saw them)."""
    repo.write("pkg/model.py", "VERSION = 2\n")
    given = run_tool(
        "-c", "slurm.branchPrefix=dash-c", "-c", "user.name=Dash C", "-c", "slurm.link=logs",
        "slurm-snapshot", "--json", "--no-push", cwd=repo.path,
    )  # fmt: skip
    branch, author = branch_and_author(given, repo)
    assert branch.startswith("dash-c-") and author == "Dash C <test@example.com>"
    excludes = repo.path.parent / "excludes"
    excludes.write_text("secret.txt\n")
    repo.write("secret.txt", "not for the snapshot\n")
    ignoring = run_tool(
        "-c", f"core.excludesFile={excludes}", "slurm-snapshot", "--json", "--no-push",
        "--no-worktree", cwd=repo.path,
    )  # fmt: skip
    assert ignoring.returncode == 0, ignoring.stderr
    tree = repo.git("ls-tree", "-r", "--name-only", ignoring.json()["commit"]).split()
    assert "secret.txt" not in tree and "pkg/model.py" in tree
    (repo.path / "secret.txt").unlink()
    assert [Path(ln["path"]).name for ln in given.json()["links"]] == ["logs"]

    repo.write("pkg/model.py", "VERSION = 3\n")
    env = {
        "GIT_CONFIG_COUNT": "3",
        "GIT_CONFIG_KEY_0": "slurm.branchPrefix", "GIT_CONFIG_VALUE_0": "from-env",
        "GIT_CONFIG_KEY_1": "slurm.link", "GIT_CONFIG_VALUE_1": "logs",
        "GIT_CONFIG_KEY_2": "slurm.link", "GIT_CONFIG_VALUE_2": "ckpt",
    }  # fmt: skip
    counted = run_tool("slurm-snapshot", "--json", "--no-push", cwd=repo.path, env=env)
    branch, author = branch_and_author(counted, repo)
    assert branch.startswith("from-env-") and author == "Test User <test@example.com>"
    assert [Path(ln["path"]).name for ln in counted.json()["links"]] == ["logs", "ckpt"]
    repo.write("pkg/model.py", "VERSION = 4\n")
    authored = run_tool(
        "slurm-snapshot", "--json", "--no-push", "--no-worktree", cwd=repo.path,
        env={"GIT_AUTHOR_NAME": "Env Author", "GIT_AUTHOR_EMAIL": "env@example.com"},
    )  # fmt: skip
    assert branch_and_author(authored, repo)[1] == "Env Author <env@example.com>"


def test_split_index_keeps_incremental_linking(repo: Repo) -> None:
    """core.splitIndex=true: before, every snapshot was a full checkout (the copied index
    named a shared part left behind), and each capture left a new shared part in .git."""
    repo.git("config", "core.splitIndex", "true")
    repo.git("update-index", "--split-index")
    shared_before = sorted(p.name for p in (repo.path / ".git").glob("sharedindex.*"))
    first = snapshot_json_unchanged(repo, "--no-push")
    repo.write("pkg/model.py", "VERSION = 2\n")
    second = snapshot_json_unchanged(repo, "--no-push")
    assert second["materialised"]["source"] == first["worktree"]
    assert second["materialised"]["linked"] > 0
    # a worktree whose index git split later (a `git status` run there by hand) still serves
    subprocess.run(["git", "update-index", "--split-index"], cwd=second["worktree"], check=True)
    repo.write("pkg/model.py", "VERSION = 3\n")
    third = snapshot_json_unchanged(repo, "--no-push")
    assert third["materialised"]["source"] == second["worktree"]
    assert Path(third["worktree"], "pkg", "model.py").read_text() == "VERSION = 3\n"
    assert sorted(p.name for p in (repo.path / ".git").glob("sharedindex.*")) == shared_before


# ---- 13.7: pushing like git ----------------------------------------------------------------


def test_the_remote_is_chosen_as_git_push_chooses_it(repo: Repo, tmp_path: Path) -> None:
    """branch.<name>.pushRemote, then remote.pushDefault, then the upstream, then origin;
    before, only the upstream and origin counted."""
    for name in ("origin", "upstream", "fork", "mirror"):
        subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / name)], check=True)
        repo.git("remote", "add", name, str(tmp_path / name))

    def pushed_to() -> str:
        snap = repo.snapshot_json("--no-worktree")
        remote: str = snap["pushed"]
        heads = subprocess.run(
            ["git", "branch", "--list", snap["branch"]], cwd=tmp_path / remote,
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert snap["branch"] in heads
        return remote

    assert pushed_to() == "origin"
    repo.git("config", "branch.main.remote", "upstream")
    repo.git("config", "branch.main.merge", "refs/heads/main")
    assert pushed_to() == "upstream"
    repo.git("config", "remote.pushDefault", "fork")
    assert pushed_to() == "fork"
    repo.git("config", "branch.main.pushRemote", "mirror")
    assert pushed_to() == "mirror"
    repo.git("switch", "-q", "--detach")
    assert pushed_to() == "fork"  # no branch: remote.pushDefault
