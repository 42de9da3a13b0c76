"""`git slurm-gc --branches [--remote NAME]`: delete snapshot branches nothing uses any more.

A branch is a snapshot's when a record names it as a launch, or when its reflog begins with the
entry `take_snapshot` writes; never by its name alone. It is deleted only when it is older
than AGE (from its creation), still points at the snapshot commit (else someone built on it),
is checked out nowhere, and no kept worktree was launched from it. Deletion is a
compare-and-swap (`update-ref -d <ref> <old>`); on the remote a push with
`--force-with-lease=<ref>:<old>`, so a branch that moved meanwhile is never lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Optional

from git_slurm.age import format_age
from git_slurm.branches import SNAPSHOT_REFLOG_MARK, stamp_time
from git_slurm.errors import GitSlurmError, UsageError, last_line
from git_slurm.gitcli import Git
from git_slurm.push import PUSH_TIMEOUT, redact
from git_slurm.records import MAKING_GRACE, SnapshotRecord
from git_slurm.repo import Checkout
from git_slurm.snapshotworktrees import recorded

# The reflog message of a snapshot branch's creation (snapshot.take_snapshot).
DELETED, KEPT = "deleted", "kept"


@dataclass(frozen=True)
class Origin:
    """When and at which commit git-slurm created a branch."""

    created: float
    commit: str


@dataclass
class BranchReport:
    name: str
    commit: str
    action: str  # deleted | kept (with dry_run: what would happen)
    reason: str  # unused | younger | in-use | checked-out | moved | failed
    detail: str
    remote: Optional[str] = None  # the remote it was (would be) deleted from as well
    warning: Optional[str] = None


def check_remote(git: Git, remote: str, branches: bool) -> None:
    """--remote only makes sense with --branches, and only for a remote that exists."""
    if not branches:
        raise UsageError("--remote needs --branches")
    if remote not in git.out("remote").split():
        raise UsageError(f"no remote named {remote!r}")


def collect_branches(
    checkout: Checkout,
    known: Sequence[SnapshotRecord],
    removed_ids: set[str],
    *,
    older_than: float,
    now: float,
    dry_run: bool,
    remote: Optional[str],
) -> list[BranchReport]:
    """Delete (or with `dry_run` report) the snapshot branches that are no longer needed."""
    git = checkout.git
    heads = local_heads(git)
    origins = snapshot_origins(git, known, heads)
    in_use = branches_in_use(checkout, removed_ids)
    checked_out = checked_out_branches(git)
    reports = []
    for name in sorted(origins):
        reason = keep_reason(name, heads[name], origins[name], in_use, checked_out)
        age = now - origins[name].created
        if reason is None and age <= max(older_than, MAKING_GRACE):
            reason = ("younger", f"created {format_age(age)} ago")
        unused = ("unused", f"created {format_age(age)} ago, used by no kept worktree")
        action, why = (KEPT, reason) if reason else (DELETED, unused)
        reports.append(BranchReport(name, heads[name], action, why[0], why[1]))
    doomed = [r for r in reports if r.action == DELETED]
    if not dry_run:
        for report in doomed:
            delete_local(git, report)
    if remote is not None:
        delete_on_remote(git, remote, [r for r in doomed if r.action == DELETED], dry_run)
    return reports


def keep_reason(
    name: str, head: str, origin: Origin, in_use: set[str], checked_out: dict[str, str]
) -> Optional[tuple[str, str]]:
    if name in in_use:
        return ("in-use", "a kept worktree was launched from it")
    if name in checked_out:
        return ("checked-out", f"checked out in {checked_out[name]}")
    if head != origin.commit:
        return ("moved", "it moved since the snapshot: it holds other work now")
    return None


def local_heads(git: Git) -> dict[str, str]:
    out = git.out("for-each-ref", "--format=%(refname:lstrip=2)%00%(objectname)", "refs/heads/")
    return dict(line.split("\0", 1) for line in out.splitlines() if "\0" in line)


def snapshot_origins(
    git: Git, known: Sequence[SnapshotRecord], heads: dict[str, str]
) -> dict[str, Origin]:
    """Branches git-slurm created, by the records read before gc, else by their reflog."""
    origins = {
        launch.branch: Origin(launch.time, launch.commit)
        for record in known
        for launch in record.launches
        if launch.branch in heads
    }
    # Only a branch named like a snapshot can be one; its reflog, not its name, decides.
    unknown = [n for n in heads if n not in origins and stamp_time(n) is not None]
    origins.update(reflog_origins(git, unknown))
    return origins


def reflog_origins(git: Git, names: Sequence[str]) -> dict[str, Origin]:
    """The branches among `names` whose oldest reflog entry is a snapshot's creation."""
    if not names:
        return {}
    fmt = "--format=%gD%x09%H%x09%gs"
    refs = [f"refs/heads/{n}" for n in names]
    rc, out, _ = git.run("log", "-g", "--date=unix", fmt, *refs, "--", check=False)
    if rc != 0:  # a branch went away meanwhile: ask one by one
        out = "".join(
            git.run("log", "-g", "--date=unix", fmt, ref, "--", check=False)[1] for ref in refs
        )
    oldest: dict[str, tuple[float, str, str]] = {}
    for line in out.splitlines():
        selector, _, rest = line.partition("\t")
        commit, _, message = rest.partition("\t")
        ref, _, when = selector.rpartition("@{")
        if not ref.startswith("refs/heads/") or not when.rstrip("}").isdigit():
            continue
        created = float(when.rstrip("}"))
        name = ref[len("refs/heads/") :]
        if name not in oldest or created <= oldest[name][0]:
            oldest[name] = (created, commit, message)
    return {
        name: Origin(created, commit)
        for name, (created, commit, message) in oldest.items()
        if message.startswith(SNAPSHOT_REFLOG_MARK)
    }


def branches_in_use(checkout: Checkout, removed_ids: set[str]) -> set[str]:
    """Branches of the snapshot worktrees that stay (read now: a launch may have added one)."""
    return {
        branch
        for worktree in recorded(checkout.common_dir)
        if worktree.id not in removed_ids
        for branch in worktree.branches
    }


def checked_out_branches(git: Git) -> dict[str, str]:
    """branch -> the worktree it is checked out in."""
    out = git.out("worktree", "list", "--porcelain")
    found, path = {}, ""
    for line in out.splitlines():
        if line.startswith("worktree "):
            path = line[len("worktree ") :]
        elif line.startswith("branch refs/heads/"):
            found[line[len("branch refs/heads/") :]] = path
    return found


def delete_local(git: Git, report: BranchReport) -> None:
    """Delete the branch only if it still points where gc saw it."""
    why = f"git-slurm gc: {report.detail}"
    ref = f"refs/heads/{report.name}"
    rc, _, err = git.run("update-ref", "-m", why, "-d", ref, report.commit, check=False)
    if rc != 0:
        report.action, report.reason = KEPT, "failed"
        report.detail = f"could not delete: {last_line(err)}"
        report.warning = f"branch {report.name}: {report.detail}"


def delete_on_remote(git: Git, remote: str, reports: Sequence[BranchReport], dry_run: bool) -> None:
    """Delete on `remote` those of `reports` it holds at the same commit; one push for all."""
    if not reports:
        return
    pushed = remote_heads(git, remote, [r.name for r in reports])
    if pushed is None:
        for report in reports:
            report.warning = f"branch {report.name}: could not list remote {remote}"
        return
    same = [r for r in reports if pushed.get(r.name) == r.commit]
    if dry_run or not same:
        for report in same:
            report.remote = remote
        return
    leases = [f"--force-with-lease=refs/heads/{r.name}:{r.commit}" for r in same]
    specs = [f":refs/heads/{r.name}" for r in same]
    env = {"GIT_TERMINAL_PROMPT": "0"}
    args = ("push", "--porcelain", "--no-verify", *leases, remote, *specs)
    try:
        _, out, err = git.run(*args, env=env, timeout=PUSH_TIMEOUT, check=False)
    except GitSlurmError as exc:  # timed out
        out, err = "", str(exc)
    deleted = set(_deleted_refs(out))
    for report in same:
        if f"refs/heads/{report.name}" in deleted:
            report.remote = remote
        else:
            report.warning = redact(f"branch {report.name} not deleted on {remote}: ") + (
                redact(last_line(err)) or "rejected"
            )


def remote_heads(git: Git, remote: str, names: Iterable[str]) -> Optional[dict[str, str]]:
    """branch -> commit on `remote` for those of `names` it has; None when it cannot be read."""
    refs = [f"refs/heads/{n}" for n in names]
    env = {"GIT_TERMINAL_PROMPT": "0"}
    try:
        rc, out, _ = git.run(
            "ls-remote", "--refs", remote, *refs, env=env, timeout=PUSH_TIMEOUT, check=False
        )
    except GitSlurmError:
        return None
    if rc != 0:
        return None
    found = {}
    for line in out.splitlines():
        oid, _, ref = line.partition("\t")
        if ref.startswith("refs/heads/"):
            found[ref[len("refs/heads/") :]] = oid
    return found


def _deleted_refs(porcelain: str) -> list[str]:
    """`-\t:refs/heads/x\t[deleted]` lines of `git push --porcelain`."""
    refs = []
    for line in porcelain.splitlines():
        flag, _, rest = line.partition("\t")
        if flag == "-":
            refs.append(rest.split("\t", 1)[0].lstrip(":"))
    return refs
