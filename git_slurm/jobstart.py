"""A job's first step in its snapshot worktree: check that the files are its commit's,
restore what a job changed, refuse to run when that fails (verify.py says how).

`check_line` is the shell line the launcher puts into every job's setup, after the `cd` into
the worktree and before the job's Python starts (which imports the user's code while it
unpickles the task). Its first half is the check itself, git alone (its diff, then its list
of index flags through grep), so a clean worktree costs two git runs; only when that finds a
difference does Python start this module:
`python -m git_slurm.jobstart WORKTREE COMMIT BRANCH`. It is started isolated (`-I`:
neither the job's PYTHONPATH nor the worktree is on its path) with git-slurm's own location
first, so no module of the user's, edited or not, can stand in for it.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import git_slurm
from git_slurm.errors import ExitCode, GitSlurmError
from git_slurm.gitcli import REPO_LOCAL_VARS
from git_slurm.records import admin_dir_of, read_record
from git_slurm.verify import Restored, check_args, listed, restore_worktree

ENTRY = "import sys; sys.path.insert(0, sys.argv[1]); from git_slurm.jobstart import main; "
ENTRY += "sys.exit(main(sys.argv[2:]))"


def check_line(worktree: Path, commit: str, branch: str) -> str:
    """The job-setup shell line: git's check, else this module (restore or refuse)."""
    admin = admin_dir_of(worktree)
    record = read_record(admin) if admin is not None else None
    if admin is None or record is None:
        raise GitSlurmError(f"{worktree} is not a git-slurm snapshot worktree")
    unset = [arg for name in REPO_LOCAL_VARS for arg in ("-u", name)]  # as gitcli does
    where = [f"--git-dir={admin}", f"--work-tree={worktree}"]
    git = ["env", *unset, "git", *where]
    check = [*git, *check_args(commit, record.links, quiet=True)]
    here = str(Path(git_slurm.__file__).resolve().parent.parent)
    fix = [sys.executable, "-I", "-c", ENTRY, here, str(worktree), commit, branch]
    return f"{shlex.join(check)} && {no_hidden_entries(git)} || {shlex.join(fix)} || exit 1"


def no_hidden_entries(git: list[str]) -> str:
    """A shell test that no index entry is flagged assume-unchanged or skip-worktree (git's
    diff never looks at those files: a job ran `git update-index`). Every line of `ls-files
    -v` but the unflagged ("H ") ones is kept, and git's exit status is the last: only "0"
    alone passes, so a flag, a failed git or a missing grep all go to the restore."""
    one_line_each = ("-c", "core.quotePath=true", "-c", "core.fsmonitor=false")
    tags = shlex.join([*git, *one_line_each, "ls-files", "-v"])
    return f"""test "$({{ {tags}; echo "$?"; }} | grep -v '^H ')" = 0"""


def report(restored: Restored, branch: str) -> Optional[str]:
    """What the job's log must say about its files, if anything."""
    if not restored.files:
        return None
    return (
        f"git-slurm: WARNING: {len(restored.files)} file(s) of snapshot {branch} "
        f"({restored.commit[:12]}) in {restored.worktree} were not the snapshot's and were "
        f"restored from git's object store before this job ran: {listed(restored.files)}. "
        "A job wrote into them (in place, or through a file shared with another snapshot); "
        "this worktree is no longer reused or linked from"
    )


def main(argv: Optional[list[str]] = None) -> int:
    """Restore the worktree's files, saying so loudly; one `error:` line when that fails."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("error: usage: python -m git_slurm.jobstart WORKTREE COMMIT BRANCH", file=sys.stderr)
        return ExitCode.USAGE
    worktree, commit, branch = Path(args[0]), args[1], args[2]
    try:
        restored = restore_worktree(worktree, commit)
    except Exception as exc:  # whatever it is, the job must not run: one line
        why = exc.message if isinstance(exc, GitSlurmError) else f"{type(exc).__name__}: {exc}"
        print(
            f"error: git-slurm: the job does not run: {worktree} is not exactly snapshot "
            f"{branch} ({commit[:12]}) and could not be restored: {why}",
            file=sys.stderr,
        )
        return exc.code if isinstance(exc, GitSlurmError) else ExitCode.FAILURE
    message = report(restored, branch)
    if message:
        print(message, file=sys.stderr, flush=True)
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
