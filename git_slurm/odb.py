"""The one place that uses pygit2: writing the snapshot's commit object.

pygit2 is imported only when a commit is written: loading libgit2 costs more than all the git
calls of a snapshot that reuses an earlier commit, and the post-checkout hook never needs it.
"""

from __future__ import annotations

import getpass
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from git_slurm.errors import GitSlurmError
from git_slurm.gitcli import Git
from git_slurm.names import Oid

if TYPE_CHECKING:
    import pygit2


def open_repository(git_dir: Path) -> pygit2.Repository:
    """The repository whose (possibly linked-worktree) git dir is `git_dir`."""
    import pygit2

    # git has accepted this repository already (`repo.discover`), honouring safe.directory in
    # every form it takes (`git -c`, GIT_CONFIG_COUNT); libgit2 reads only config files and
    # would refuse a checkout of another uid that the user trusts for this command
    # (pygit2.option, not pygit2.settings.owner_validation: that is not in pygit2 1.14)
    pygit2.option(pygit2.enums.Option.SET_OWNER_VALIDATION, 0)
    try:
        return pygit2.Repository(str(git_dir))
    except pygit2.GitError as exc:
        raise GitSlurmError(f"cannot open repository {git_dir}: {exc}") from exc


def signature(repo: pygit2.Repository) -> pygit2.Signature:
    """The user's identity, or a sane one made from the login and host when none is set."""
    import pygit2

    try:
        return repo.default_signature
    except (KeyError, pygit2.GitError):
        user = getpass.getuser() or "git-slurm"
        return pygit2.Signature(user, f"{user}@{socket.gethostname() or 'localhost'}")


_IDENT = re.compile(
    r"^(?P<name>.*) <(?P<email>.*)> (?P<time>\d+) (?P<tz>[+-])(?P<hh>\d\d)(?P<mm>\d\d)$"
)


def git_identities(git: Git) -> Optional[tuple[pygit2.Signature, pygit2.Signature]]:
    """(author, committer) as git itself would write them: libgit2 reads only config files,
    git also `git -c user.name=...`, GIT_CONFIG_COUNT and GIT_AUTHOR_*/GIT_COMMITTER_*.
    None when git knows no identity (the caller makes one up)."""
    import pygit2

    rc, out, _ = git.run("var", "-l", check=False)
    idents = dict(
        line.split("=", 1)
        for line in out.splitlines()
        if line.startswith(("GIT_AUTHOR_IDENT=", "GIT_COMMITTER_IDENT="))
    )
    found = []
    for key in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"):
        match = _IDENT.match(idents.get(key, "")) if rc == 0 else None
        if match is None:
            return None
        offset = int(match["hh"]) * 60 + int(match["mm"])
        try:
            found.append(
                pygit2.Signature(
                    match["name"],
                    match["email"],
                    int(match["time"]),
                    -offset if match["tz"] == "-" else offset,
                )
            )
        except (ValueError, UnicodeError):  # a name libgit2 refuses: its own reading, then
            return None
    return found[0], found[1]


def create_commit(git: Git, tree: Oid, parents: list[Oid], message: str) -> Oid:
    """A commit object that no ref points to yet."""
    import pygit2

    repo = open_repository(git.git_dir)
    who = git_identities(git) or (signature(repo), signature(repo))
    # as bytes: a checkout path (or -m text) that is not UTF-8 is kept as git would keep it
    raw = message.encode("utf-8", "surrogateescape")
    try:
        oid = repo.create_commit(
            None, who[0], who[1], raw, pygit2.Oid(hex=tree), [pygit2.Oid(hex=p) for p in parents]
        )
    except pygit2.GitError as exc:
        raise GitSlurmError(f"cannot write the snapshot commit: {exc}") from exc
    return Oid(str(oid))
