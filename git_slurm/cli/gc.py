"""`git slurm-gc`: remove stale snapshot worktrees that no job needs and no job wrote into."""

from __future__ import annotations

import sys
import time
from typing import Any, Optional

from plumbum import cli

from git_slurm import config
from git_slurm.age import parse_age
from git_slurm.cli.base import GitSlurmApp, print_json, run_app
from git_slurm.diskusage import human_bytes
from git_slurm.gc import KEPT, PRUNED, REMOVED, GcOptions, GcReport, WorktreeReport, collect
from git_slurm.gcbranches import DELETED, BranchReport
from git_slurm.gitcli import Git
from git_slurm.manpages import ManSource
from git_slurm.repo import discover


class GcApp(GitSlurmApp):
    """Remove snapshot worktrees that git-slurm made and nothing needs any more: unused for
    longer than AGE, no pending, running, requeued or unknown job, and no file a job wrote."""

    PROGNAME = "git slurm-gc"
    USAGE = "    git slurm-gc [options]\n"

    older_than = cli.SwitchAttr(
        "--older-than",
        str,
        argname="AGE",
        help="remove snapshot worktrees unused for longer than AGE: 30m, 12h, 7d, 2w, 1d12h, or "
        "a git date such as 2.weeks.ago (git config slurm.gcOlderThan, else 7d)",
    )
    branches = cli.Flag(
        "--branches", help="also delete local snapshot branches older than AGE that nothing uses"
    )
    remote = cli.SwitchAttr(
        "--remote",
        str,
        argname="NAME",
        help="with --branches: delete those branches on remote NAME too, where they still "
        "point at the snapshot",
    )
    dry_run = cli.Flag(["-n", "--dry-run"], help="say what would be removed; remove nothing")
    force = cli.Flag(
        "--force",
        help="also remove worktrees that hold job-written files (never one with a live job, "
        "nor one you locked)",
    )
    json = cli.Flag("--json", help="print exactly one JSON object on stdout, nothing else")

    def main(self) -> int:
        checkout = discover()
        now = time.time()
        text, seconds = self.age(checkout.git, now)
        options = GcOptions(
            older_than=seconds,
            now=now,
            force=self.force,
            dry_run=self.dry_run,
            branches=self.branches,
            remote=self.remote,
        )
        report = collect(checkout, options)
        if self.json:
            print_json(to_json(report, options, text))
        else:
            self.say(describe(report, options, text))
        for warning in report.warnings:
            self.note(f"warning: {warning}")
        return 0

    def age(self, git: Git, now: float) -> tuple[str, float]:
        """--older-than, else git config slurm.gcOlderThan, else 7d: as text and seconds."""
        if self.older_than is not None:
            return self.older_than, parse_age(self.older_than, now)
        return config.SlurmConfig(git).gc_older_than(now)


def to_json(report: GcReport, options: GcOptions, age_text: str) -> dict[str, Any]:
    data = report.to_json(options)
    data["older_than_text"] = age_text
    return data


VERBS = {
    (REMOVED, False): "removed",
    (REMOVED, True): "would remove",
    (PRUNED, False): "pruned",
    (PRUNED, True): "would prune",
    (KEPT, False): "kept",
    (KEPT, True): "would keep",
}


def describe(report: GcReport, options: GcOptions, age_text: str) -> str:
    """A line per worktree and per snapshot branch (with --branches), then the totals."""
    lines = [worktree_line(w, options.dry_run) for w in report.worktrees]
    lines += [branch_line(b, options.dry_run) for b in report.branches]
    lines.append(summary(report, options, age_text))
    return "\n".join(lines)


def worktree_line(w: WorktreeReport, dry_run: bool) -> str:
    """`kept <path> (<branches>; jobs 12, 13): <why>`: every launch and job it has."""
    verb = VERBS[(w.action, dry_run)]
    size = f", {human_bytes(w.freed_bytes)}" if w.action != KEPT else ""
    if size and w.shared_files:
        size += f" + {w.shared_files} files shared with other snapshots"
    return f"{verb} {w.path} ({_whose(w)}): {w.detail}{size}"


def _whose(w: WorktreeReport) -> str:
    branches = ", ".join(w.branches) or "no branch"
    ids = [job.id for job in w.jobs]
    shown = ", ".join(ids[:JOBS_SHOWN]) + (
        f", +{len(ids) - JOBS_SHOWN}" if len(ids) > JOBS_SHOWN else ""
    )
    return f"{branches}; {'jobs ' + shown if ids else 'no jobs recorded'}"


JOBS_SHOWN = 10  # job ids on a worktree's line (--json has them all)


def branch_line(b: BranchReport, dry_run: bool) -> str:
    if b.action == DELETED:
        verb = "would delete" if dry_run else "deleted"
        where = f" (and on {b.remote})" if b.remote else ""
        return f"{verb} branch {b.name}{where}: {b.detail}"
    return f"{'would keep' if dry_run else 'kept'} branch {b.name}: {b.detail}"


def summary(report: GcReport, options: GcOptions, age_text: str) -> str:
    """`3 snapshot worktrees (--older-than 7d): removed 1, pruned 0, kept 2; freed 1.2 GiB`."""
    dry = options.dry_run
    freed_bytes, still_linked = report.freed()
    freed = human_bytes(freed_bytes)
    if still_linked:
        freed = f"at least {freed} ({still_linked} files are hard-linked from elsewhere)"
    verbs = ((REMOVED, "remove"), (PRUNED, "prune"), (KEPT, "keep"))
    counts = ", ".join(f"{_verb(verb, dry)} {report.count(action)}" for action, verb in verbs)
    noun = "worktree" if len(report.worktrees) == 1 else "worktrees"
    text = f"{len(report.worktrees)} snapshot {noun} (--older-than {age_text}): {counts}"
    text += f"; {_verb('free', dry)} {freed}"
    if report.branches:
        deleted = sum(1 for b in report.branches if b.action == DELETED)
        text += f"; {_verb('delete', dry)} {deleted} branches"
    return f"dry run: {text}" if dry else text


def _verb(verb: str, dry_run: bool) -> str:
    if dry_run:
        return f"would {verb}"
    return {"keep": "kept", "free": "freed"}.get(verb, f"{verb.rstrip('e')}ed")


def main(argv: Optional[list[str]] = None) -> int:
    return run_app(GcApp, argv)


if __name__ == "__main__":
    sys.exit(main())


APP = GcApp
MANUAL = ManSource(
    name="git-slurm-gc",
    summary="remove stale snapshot worktrees without hurting a job or losing a file",
    synopsis="git slurm-gc [--older-than AGE] [--branches [--remote NAME]] [-n | --dry-run] "
    "[--force] [--json]",
    description=[
        "Snapshot worktrees made by git slurm-snapshot are full checkouts; on a cluster with a "
        "small home quota they must be reclaimed. git slurm-gc removes those that nothing "
        "needs any more, and says for every other one why it stays.",
        "Only worktrees that git-slurm made are considered: it recognises them by the record "
        "it keeps in the worktree's admin dir (git-slurm.json), never by name. A snapshot "
        "that was interrupted while being made (locked as being made, no record) counts as "
        "well: at once when it was made on this host and no git-slurm process is making it "
        "any more (a file lock tells), else once it has not changed for 15 minutes. Leftover "
        "private index copies of interrupted captures are removed after 15 minutes.",
        "A worktree is removed when all of these hold: it was last used (made, or reused by a "
        "launch) more than AGE ago; no launch is handing it to its jobs; none of its recorded "
        "jobs is live; no live SLURM job works in it; and it holds no file a job wrote. A "
        "worktree you locked yourself (git worktree lock, with or without a reason) is never "
        "removed, and never reused or re-locked by git slurm-snapshot.",
        "AGE is 30m, 12h, 7d, 2w (also 3 hours, 10 min), a combination such as 1d12h or 1h30m "
        "(each unit once), or a git date such as 2.weeks.ago or yesterday. A date with a word "
        "git's date parser does not know (1 fortnight: git would skip the word and read the "
        "1st of this month) is an error, never a reading of the rest.",
        "The hand-off: a launcher makes the snapshot, submits the jobs and only then records "
        "them. It names itself with git slurm-snapshot --handoff HOST:PID:START (its host, "
        "process id and start time in clock ticks, /proc/PID/stat field 22), which the record "
        "and the --json object (handoff) keep. While that process lives on this host, a "
        "launch that has not recorded its jobs keeps its worktree whatever AGE says; a "
        "launcher on another host is waited for 15 minutes after the launch. A snapshot made "
        "by hand has no hand-off (handoff is null) and goes once older than AGE.",
        "A job is live while it is pending, running, requeued or suspended, and also when its "
        "state cannot be read. gc lists your SLURM jobs (squeue -u with your uid, on the "
        "default cluster and on each cluster a recorded job names) with their working "
        "directories: a worktree a live job's working directory lies in is kept, recorded or "
        "not (sbatch --chdir by hand). Recorded jobs not in that list are asked for by id "
        "with one more squeue call, and those the controller no longer holds with one sacct "
        "call, all within 10 seconds. When squeue fails or does not answer in time, every "
        "SLURM job counts as live and every candidate is kept. A job that the controller no "
        "longer knows has ended. A local job is live while its process runs (same pid and "
        "start time, not a zombie); a local job of another host counts as live.",
        "squeue and sacct run with a clean environment: every SQUEUE_*, SACCT_*, SINFO_*, "
        "SCONTROL_* and SLURM_* variable is removed except SLURM_CONF and SLURM_JWT, so no "
        "filter of yours (SQUEUE_PARTITION, SQUEUE_STATES, SQUEUE_USERS, SLURM_CLUSTERS) can "
        "hide a job; the filters gc needs are arguments. Each runs as the leader of a process "
        "group of its own, killed with all it started at the time bound, or as soon as it has "
        "exited when a helper it left keeps its output open.",
        "Job-written files are what git status shows in the worktree besides the snapshot's "
        "own links: untracked and ignored files (a wandb/ directory, checkpoints, logs) and "
        "changed tracked files, and every file in a submodule directory the snapshot left "
        "empty. A worktree that holds any is kept and the paths are reported, unless --force "
        "is given. Paths behind a symlink are not in the worktree and do not count, nor do "
        "caches a job regenerates: __pycache__/*.pyc, *.pyc, *.pyo, .pytest_cache/, "
        ".mypy_cache/, .ruff_cache/.",
        "Removal is git worktree unlock followed by git worktree remove: symlinks are removed "
        "as links, and nothing behind them is ever followed, so the outputs in the original "
        "checkout stay as they are. A snapshot worktree whose directory vanished (a scratch "
        "purge) is unlocked and its admin dir pruned with git worktree prune (or, when that "
        "would also prune worktrees of your own, with git worktree remove for just that one). "
        "One that moved with its repository (mv proj elsewhere) is found in the worktree "
        "directory by its admin id, repaired with git worktree repair, and removed.",
        "Deciding and removing happen under the repository lock that git slurm-snapshot takes "
        "when it reuses a worktree, and a worktree whose record changed while gc ran is kept, "
        "so neither a second gc nor a launch can interleave with a removal. A dry run, which "
        "removes nothing, runs the git status of all due worktrees two at a time without the "
        "lock.",
        "gc's time follows the worktrees that are due, not all of them: one kept for its "
        "record alone (age, hand-off, your lock) costs a few file reads; a due one costs a git "
        "status and a read of its directories, in which a file that several snapshots share "
        "through hard links is stat'ed once per run, not once per snapshot. The disk use "
        "counted is still that of an lstat of every name, as du counts it.",
        "With --branches, local snapshot branches are deleted too when they were created more "
        "than AGE ago, still point at the snapshot commit, are checked out nowhere, and no "
        "kept worktree was launched from them. Branches pushed to a remote stay there unless "
        "--remote NAME is given as well; a remote branch is deleted only while it still points "
        "at the snapshot commit (--force-with-lease).",
        "The report has a line per snapshot worktree, naming all its launches' branches and "
        "its recorded jobs (removed, pruned or kept, with the reason: live job 1234 RUNNING, "
        "holds 3 job-written files, last used 2d ago), a line per snapshot branch with "
        "--branches (deleted or kept, with the reason), and the "
        "disk freed, as du counts it: a file that snapshots share through hard links counts "
        "once, when its last link goes; one still linked from a kept snapshot is not counted, "
        "and the total then says at least. --dry-run prints the same report and changes "
        "nothing.",
    ],
    configuration=[
        ("slurm.gcOlderThan", "default for --older-than (7d)."),
        ("slurm.worktreeDir", "where git slurm-snapshot makes worktrees; gc finds them anyway."),
    ],
    exit_status=[
        (
            "0",
            "gc did what it could; kept worktrees and their reasons are in the report, and "
            "a removal that failed is a warning on stderr.",
        ),
        ("1", "git failed while gc read the repository."),
        ("2", "bad input: an unknown AGE form, --remote without --branches, no such remote."),
        ("3", "not inside a work tree, or a bare repository."),
    ],
    examples=[
        ("See what a week-old cleanup would do:", "git slurm-gc --older-than 7d --dry-run"),
        (
            "Remove the snapshot worktrees unused for two weeks:",
            "git slurm-gc --older-than 2.weeks.ago",
        ),
        (
            "Also delete the snapshot branches, here and on origin:",
            "git slurm-gc --older-than 30d --branches --remote origin",
        ),
        ("Report for a script:", "git slurm-gc --json"),
    ],
)
