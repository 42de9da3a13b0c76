"""`git slurm-snapshot`: record the working tree on a new branch and materialise it."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

from plumbum import cli

from git_slurm import config
from git_slurm.cli.base import GitSlurmApp, print_json, run_app
from git_slurm.repo import discover
from git_slurm.snapshot import Snapshot, SnapshotOptions, take_snapshot


class SnapshotApp(GitSlurmApp):
    """Record HEAD + uncommitted + untracked files as a commit on a new branch
    `<prefix>-YYYYMMDD-HHMMSS`, without touching HEAD, the index, the stash or any file;
    check it out as a locked `git worktree` whose output paths link back to this checkout."""

    PROGNAME = "git slurm-snapshot"
    USAGE = "    git slurm-snapshot [options]\n"

    prefix = cli.SwitchAttr(
        "--prefix", str, argname="P",
        help="branch prefix (git config slurm.branchPrefix, else slurm-job)",
    )
    links = cli.SwitchAttr(
        "--link", str, list=True, argname="PATH",
        help="path, relative to the current directory, to link from the worktree back to "
        "this checkout; repeatable (git config slurm.link, else outputs, multirun, .submitit)",
    )
    worktree_dir = cli.SwitchAttr(
        "--worktree-dir", str, argname="DIR",
        help="where snapshot worktrees are made (git config slurm.worktreeDir, else "
        "slurm-snapshots/ in the common git dir)",
    )
    no_worktree = cli.Flag("--no-worktree", help="make (and push) the branch only")
    push = cli.Flag("--push", excludes=["--no-push"], help="push the branch; failure is an error")
    no_push = cli.Flag("--no-push", help="do not push (default: git config slurm.push, else "
                       "push when the remote exists, and only warn when that fails)")
    remote = cli.SwitchAttr(
        "--remote", str, argname="NAME",
        help="remote to push to (the current branch's upstream remote, else origin)",
    )
    message = cli.SwitchAttr(["-m", "--message"], str, argname="MSG",
                             help="text added to the snapshot commit message")
    json = cli.Flag("--json", help="print exactly one JSON object on stdout, nothing else")
    install_hooks = cli.Flag(
        "--install-hooks", excludes=["--uninstall-hooks"],
        help="install the post-checkout reminder hook (chaining an existing one) and exit",
    )
    uninstall_hooks = cli.Flag("--uninstall-hooks",
                               help="remove the post-checkout reminder hook and exit")

    def main(self) -> int:
        checkout = discover()
        if self.install_hooks or self.uninstall_hooks:
            from git_slurm.hookinstall import install, uninstall

            said = install(checkout) if self.install_hooks else uninstall(checkout)
            print(said)
            return 0
        snapshot = take_snapshot(checkout, self.options(checkout))
        if self.json:
            print_json(snapshot.to_json())
        else:
            print(describe(snapshot))
        for note in snapshot.notes:
            print(f"git-slurm: {note}", file=sys.stderr)
        return 0

    def options(self, checkout_: object) -> SnapshotOptions:
        from git_slurm.repo import Checkout

        assert isinstance(checkout_, Checkout)
        git = checkout_.git
        worktree_dir = (
            (Path.cwd() / self.worktree_dir).resolve()
            if self.worktree_dir
            else config.worktree_dir(checkout_)
        )
        push: Optional[bool] = True if self.push else False if self.no_push else None
        if push is None:
            push = config.push_default(git)
        return SnapshotOptions(
            prefix=self.prefix if self.prefix is not None else config.branch_prefix(git),
            links=list(self.links) or config.link_paths(git),
            worktree_dir=worktree_dir,
            make_worktree=not self.no_worktree,
            push=push,
            remote=self.remote,
            message=self.message,
            command_line=shlex.join(["git", "slurm-snapshot", *sys.argv[1:]]),
            max_untracked=config.max_untracked_size(git),
        )


def describe(snapshot: Snapshot) -> str:
    """A few lines for a person."""
    state = "with uncommitted changes" if snapshot.dirty else "clean"
    lines = [f"snapshot {snapshot.branch} -> {snapshot.commit[:12]} ({state})"]
    if snapshot.worktree is not None:
        how = "reused" if snapshot.reused else "created"
        lines.append(f"worktree {snapshot.worktree} ({how})")
        lines.extend(f"link {ln.rel} -> {ln.target}" for ln in snapshot.links)
    if snapshot.pushed:
        lines.append(f"pushed to {snapshot.pushed}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    return run_app(SnapshotApp, argv)


if __name__ == "__main__":
    sys.exit(main())
