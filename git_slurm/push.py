"""Pushing a snapshot branch with the git CLI, so the user's credentials and ssh config apply."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Optional

from git_slurm.errors import GitSlurmError, UsageError, git_reason
from git_slurm.gitcli import Git, progress_shown
from git_slurm.names import BranchName

PUSH_TIMEOUT = 120.0
_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)


@dataclass(frozen=True)
class PushResult:
    remote: Optional[str]  # where it was pushed, or None
    note: Optional[str]  # why not, or the warning of a failed default push


def redact(text: str) -> str:
    """Drop `user:password@` from URLs, so credentials never reach output or records."""
    return _CREDENTIALS.sub(r"\g<scheme>", text)


def default_remote(git: Git, branch: Optional[str]) -> str:
    """The remote `git push` would push to: `branch.<name>.pushRemote`, `remote.pushDefault`,
    the branch's `branch.<name>.remote`, else `origin` (git's own choice, read by git)."""
    if branch:
        chosen = git.out(
            "for-each-ref", "--format=%(push:remotename)", "--", f"refs/heads/{branch}"
        )
    else:  # detached HEAD: no branch to ask
        configured = git.config_get_all("remote.pushDefault")
        chosen = configured[-1] if configured else ""
    return chosen if chosen and chosen != "." else "origin"


def push_url(git: Git, remote: str) -> str:
    rc, out, _ = git.run("remote", "get-url", "--push", "--all", remote, check=False)
    return out if rc == 0 else ""


def push_branch(
    git: Git,
    name: BranchName,
    remote: str,
    *,
    explicit: bool,
    remote_given: bool,
    timeout: float = PUSH_TIMEOUT,
) -> PushResult:
    """Push `name`; failure is an error when the push was asked for, else a warning."""
    remotes = git.out("remote").split()
    if remote not in remotes:
        if remote_given:
            raise UsageError(redact(f"no remote named {remote!r}"))
        if explicit:
            raise UsageError(
                f"cannot push: the repository has no remote {remote!r} "
                "(add one with git remote add, or choose one with --remote)"
            )
        if not remotes:  # nothing to push to, and pushing was only the default: nothing to say
            return PushResult(None, None)
        return PushResult(None, f"not pushed: the repository has no remote {remote!r}")
    env = {"GIT_TERMINAL_PROMPT": "0"}  # fail, never prompt; ssh config stays the user's
    # on a terminal: git's own progress and report, as git push shows them; but not where
    # git might print a URL's credentials, which only pass through redact()
    shown = progress_shown() and not _CREDENTIALS.search(push_url(git, remote))
    try:
        rc, _, err = git.run(
            "push",
            "--progress" if shown else "--quiet",
            "--no-verify",
            remote,
            f"{name.ref}:{name.ref}",
            env=env,
            timeout=timeout,
            check=False,
            terminal=shown,
        )
    except GitSlurmError as exc:  # timed out
        rc, err = 1, str(exc)
    if rc == 0:
        return PushResult(remote, None)
    last = git_reason(err) or ("git's message is above" if shown else "push failed")
    message = redact(f"push of {name} to {remote} failed: {last}")
    if explicit:
        raise GitSlurmError(message)
    return PushResult(None, f"warning: {message}")


def unpush(
    git: Git, name: BranchName, remote: str, commit: str, timeout: float = PUSH_TIMEOUT
) -> None:
    """Best effort: delete `name` on `remote` again, only while it is still at `commit` (a
    snapshot that failed after its push). A failure leaves a valid snapshot branch there."""
    lease = f"--force-with-lease={name.ref}:{commit}"
    env = {"GIT_TERMINAL_PROMPT": "0"}
    with contextlib.suppress(GitSlurmError):  # timed out
        git.run(
            "push", "--quiet", "--no-verify", lease, remote, f":{name.ref}",
            env=env, timeout=timeout, check=False,
        )  # fmt: skip
