"""`git slurm-snapshot`: record the working tree on a new branch and materialise it."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

from plumbum import cli

from git_slurm import config
from git_slurm.cli.base import GitSlurmApp, print_json, run_app
from git_slurm.gitcli import show_progress
from git_slurm.manpages import ManSource
from git_slurm.push import redact
from git_slurm.records import checked_handoff
from git_slurm.repo import Checkout, discover_with_head
from git_slurm.snapshot import Snapshot, SnapshotOptions, take_snapshot


class SnapshotApp(GitSlurmApp):
    """Record HEAD + uncommitted + untracked files as a commit on a new branch
    `<prefix>-YYYYMMDD-HHMMSS`, without touching HEAD, the index, the stash or any file;
    check it out as a locked `git worktree` whose output paths link back to this checkout."""

    PROGNAME = "git slurm-snapshot"
    USAGE = "    git slurm-snapshot [options]\n"

    prefix = cli.SwitchAttr(
        "--prefix",
        str,
        argname="P",
        help="branch prefix (git config slurm.branchPrefix, else slurm-job)",
    )
    links = cli.SwitchAttr(
        "--link",
        str,
        list=True,
        argname="PATH",
        help="path, relative to the current directory, to link from the worktree back to "
        "this checkout; never part of the snapshot, and never a tracked path; repeatable "
        "(git config slurm.link, else outputs, multirun, .submitit)",
    )
    worktree_dir = cli.SwitchAttr(
        "--worktree-dir",
        str,
        argname="DIR",
        help="where snapshot worktrees are made (git config slurm.worktreeDir, else "
        "slurm-snapshots/ in the common git dir)",
    )
    no_worktree = cli.Flag("--no-worktree", help="make (and push) the branch only")
    submodules = cli.Flag(
        "--submodules",
        excludes=["--no-submodules"],
        help="check submodules out in the worktree at their recorded commits, from their "
        "clones in this checkout, never over the network (git config slurm.submodules)",
    )
    no_submodules = cli.Flag(
        "--no-submodules", help="leave submodules as empty directories (the default)"
    )
    push = cli.Flag("--push", excludes=["--no-push"], help="push the branch; failure is an error")
    no_push = cli.Flag(
        "--no-push",
        help="do not push (default: git config slurm.push, else "
        "push when the remote exists, and only warn when that fails)",
    )
    remote = cli.SwitchAttr(
        "--remote",
        str,
        argname="NAME",
        help="remote to push to (the one git push would use: branch.<name>.pushRemote, "
        "remote.pushDefault, the upstream's remote, else origin)",
    )
    message = cli.SwitchAttr(
        ["-m", "--message"], str, argname="MSG", help="text added to the snapshot commit message"
    )
    json = cli.Flag("--json", help="print exactly one JSON object on stdout, nothing else")
    handoff = cli.SwitchAttr(
        "--handoff", str, argname="HOST:PID:START", help="(for launchers) the process that will "
        "record the jobs: git slurm-gc keeps the worktree while it lives; see git-slurm-gc(1)",
    )  # fmt: skip
    captured_fd = cli.SwitchAttr(
        "--captured-fd", int, argname="FD", help="(for launchers) write `captured` to this open "
        "file descriptor once the working tree is recorded: later edits are not in the snapshot",
    )  # fmt: skip
    install_hooks = cli.Flag(
        "--install-hooks",
        excludes=["--uninstall-hooks", "--json"],  # what they say is a sentence, no object
        help="install the post-checkout reminder hook (chaining an existing one) and exit",
    )
    uninstall_hooks = cli.Flag(
        "--uninstall-hooks",
        excludes=["--json"],
        help="remove the post-checkout reminder hook and exit",
    )

    def main(self) -> int:
        show_progress(not self.quiet and sys.stderr.isatty())  # git's, of a push or checkout
        checkout, head = discover_with_head()
        if self.install_hooks or self.uninstall_hooks:
            from git_slurm.hookinstall import install, uninstall

            self.say(install(checkout) if self.install_hooks else uninstall(checkout))
            return 0
        options = self.options(checkout)
        snapshot = take_snapshot(checkout, options, head)
        if self.json:
            print_json({**snapshot.to_json(), "handoff": options.handoff})
        else:
            self.say(describe(snapshot))
        for note in snapshot.notes:
            self.note(note)
        return 0

    def options(self, checkout: Checkout) -> SnapshotOptions:
        settings = config.SlurmConfig(checkout.git)
        worktree_dir = (
            (Path.cwd() / Path(self.worktree_dir).expanduser()).resolve()
            if self.worktree_dir
            else settings.worktree_dir(checkout)
        )
        push: Optional[bool] = True if self.push else False if self.no_push else None
        return SnapshotOptions(
            prefix=self.prefix if self.prefix is not None else settings.branch_prefix(),
            links=list(self.links) or settings.link_paths(),
            worktree_dir=worktree_dir,
            make_worktree=not self.no_worktree,
            push=settings.push_default() if push is None else push,
            remote=self.remote,
            message=self.message,
            # the commit message keeps the command, never a URL's credentials typed in it
            command_line=redact(shlex.join(["git", "slurm-snapshot", *sys.argv[1:]])),
            max_untracked=settings.max_untracked_size(),
            submodules=self.submodules or (not self.no_submodules and settings.submodules()),
            push_timeout=settings.push_timeout(),
            handoff=None if self.handoff is None else checked_handoff(self.handoff),
            captured_fd=self.captured_fd,
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


APP = SnapshotApp
MANUAL = ManSource(
    name="git-slurm-snapshot",
    summary="record the working tree as a snapshot branch and worktree for SLURM jobs",
    synopsis="git slurm-snapshot [--prefix P] [--link PATH]... [--worktree-dir DIR] "
    "[--no-worktree]\n                   [--submodules] [--push | --no-push] [--remote NAME] "
    "[-m MSG] [--json]"
    "\ngit slurm-snapshot --install-hooks | --uninstall-hooks",
    description=[
        "Records the exact code state of the current work tree (HEAD plus uncommitted and "
        "untracked, not ignored files: exactly what git add -A would stage in a fresh index) "
        "as a commit on a new branch <prefix>-YYYYMMDD-HHMMSS, named in local time. HEAD, the "
        "index, the stash and every file of the work tree are left as they were: the capture "
        "uses a private copy of the index, and the user's git hooks do not run.",
        "A clean tree snapshots to HEAD's own commit; a dirty one to a new commit whose parent "
        "is HEAD and whose message names the base commit, the branch, the checkout and the "
        "command. Two snapshots in the same second get distinct names (a -2, -3 suffix); a "
        "branch is created atomically and never overwrites anything.",
        "The snapshot is then checked out as a detached, locked git worktree (in "
        "slurm-snapshots/ inside the common git dir unless told otherwise), and each link path "
        "becomes a symlink from the worktree to the same path in this checkout, so that what "
        "jobs write lands here. A missing link target is created here as a directory. A "
        "worktree that already holds the identical tree and links is reused. git worktree "
        "list shows each snapshot worktree as locked, with the snapshot and its jobs as reason.",
        "Link paths hold outputs, never code: they are left out of the snapshot whether git "
        "ignores them or not (a note says which ones git does not ignore, with the .gitignore "
        "lines to add), and a link path that is tracked, or holds tracked files, is refused "
        "(placeholders such as .gitkeep or .gitignore aside). A "
        "link path may itself be a symlink (multirun pointing to scratch): the worktree's link "
        "points at it, and nothing is created outside the repository; a path under a symlink "
        "that leaves the repository, and overlapping link paths, are refused before anything "
        "is made. Repositories may share one worktree dir: a worktree whose branch name another "
        "repository took there in the same second is made as <branch>.2. A worktree dir inside "
        "the work tree is left out of every snapshot; it may not be the work tree itself or "
        "hold tracked files.",
        "git's configuration is read as git reads it: git -c and GIT_CONFIG_COUNT hold for "
        "every slurm.* key and for the commit's identity, and a push goes where git push "
        "would. When git refuses the repository (dubious ownership, a bad config line), its "
        "reason and advice are the error line.",
        "Submodules are recorded at their commits, as git add records them, and are empty "
        "directories in the worktree. With --submodules each is checked out there at exactly "
        "that commit, as a git worktree of its clone in this checkout (nested ones too): no "
        "network, no objects copied. A submodule not cloned here, or whose clone lacks the "
        "recorded commit, is an error.",
        "git-lfs files are recorded as their pointers, as git add records them. The worktree "
        "gets their content from the repository's local LFS store (git lfs checkout); nothing "
        "is ever downloaded. A file whose content is not local stays a pointer, and a note on "
        "stderr names it. No LFS content is pushed (the user's pre-push hook does not run).",
        "The Hydra launcher (hydra/launcher=submitit_slurm or submitit_local with "
        "hydra.launcher.snapshot.enabled=true) runs this command once per launch and runs "
        "every job inside the worktree.",
        "--install-hooks writes the post-checkout reminder hook into hooks/ of the "
        "repository's common git dir, which every linked worktree shares, and does nothing "
        "else. The hook is a short sh script marked as git-slurm's; it runs git-slurm with the "
        "absolute path of the Python that ran --install-hooks, so it works without the venv on "
        "PATH (install again after moving the venv). A post-checkout hook already there that "
        "is not git-slurm's (git-lfs installs one) is renamed post-checkout.before-git-slurm and "
        "runs first with the same arguments; its exit status stays the hook's, and so the "
        "checkout's. Under pre-commit's own post-checkout hook, git-slurm's is installed as "
        "post-checkout.legacy, which pre-commit runs first (also when pre-commit is installed "
        "after git-slurm). Installing again changes nothing. When core.hooksPath sends git to "
        "another directory, the command refuses and says where; users of the pre-commit "
        "framework use its hook id git-slurm-reminders (stage post-checkout) instead. "
        "--uninstall-hooks removes git-slurm's hook and the reminder's cache and renames "
        "the hook it chained back, leaving the hooks directory as it was.",
        "After a branch checkout the hook prints at most two lines, and only when there is "
        "something to say: how many snapshot worktrees are older than slurm.gcOlderThan with "
        "no live job, how much disk they hold, and the git slurm-gc command that removes them; "
        "how many recorded jobs are still pending or running; and, when the branch just "
        "checked out is a snapshot branch, that commits there change no job and that git "
        "switch -c starts real work from it. It never waits for SLURM or walks a worktree: job "
        "states and sizes come from a cache in the common git dir, refreshed in the "
        "background at most every two minutes. Its own part always exits 0.",
    ],
    configuration=[
        ("slurm.branchPrefix", "default for --prefix (slurm-job)."),
        ("slurm.link", "multi-valued default for --link (outputs, multirun, .submitit)."),
        ("slurm.worktreeDir", "default for --worktree-dir, relative to the top of the work tree."),
        (
            "slurm.push",
            "true or false: default for --push/--no-push. Unset: push when the "
            "remote exists, and only warn when that push fails.",
        ),
        (
            "slurm.maxUntrackedSize",
            "untracked files larger than this are refused (default 50m; 0 turns the check off).",
        ),
        ("slurm.submodules", "true: default for --submodules (false)."),
        (
            "slurm.pushTimeout",
            "how long a push may take (90s, 2m; default 2m); then git and its transport "
            "helpers are killed and the push counts as failed.",
        ),
        ("slurm.gcOlderThan", "default age for git slurm-gc and for the reminder hook (7d)."),
        ("slurm.reminders", "false silences the post-checkout reminder hook."),
    ],
    exit_status=[
        ("0", "the snapshot was made (or the hooks installed/removed)."),
        ("1", "it failed while working: git, the disk, or a push that was asked for."),
        (
            "2",
            "bad input: an option, a prefix that makes no valid branch name (or one git "
            "cannot store: under an existing branch, too long), a link path outside the "
            "repository, tracked or overlapping another, a worktree dir that is the work tree "
            "or holds tracked files, an unwritable worktree dir, a too large untracked file, "
            "--push with no remote.",
        ),
        ("3", "not inside a work tree, or a bare repository."),
    ],
    examples=[
        ("Snapshot the current state and print it for a script:", "git slurm-snapshot --json"),
        (
            "Only make the branch, with a note, and push it to origin:",
            "git slurm-snapshot --no-worktree --push -m 'baseline before the refactor'",
        ),
        (
            "Link checkpoints and logs as well:",
            "git slurm-snapshot --link outputs --link checkpoints --link logs",
        ),
        ("Install the post-checkout reminder:", "git slurm-snapshot --install-hooks"),
        (
            "Remove the reminder hook, restoring the previous one:",
            "git slurm-snapshot --uninstall-hooks",
        ),
    ],
)
