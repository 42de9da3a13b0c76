"""Writing the snapshot's commit object: `git var` for the identity, `git hash-object`.

libgit2's load (`import pygit2`, 105-122 ms on the reference VM) cost more than every git call
of a one-file snapshot together, to write one object. git resolves the identity as it would
for the user's own commit (`git -c user.name=...`, GIT_CONFIG_COUNT, GIT_AUTHOR_*/
GIT_COMMITTER_*, their dates); when it knows none, one is made from the login and the host.
The object is written as given (`git commit-tree` would rewrite a message that is not UTF-8,
a checkout path of Latin-1 bytes, as if it were Latin-1).
"""

from __future__ import annotations

import getpass
import socket
import time
from typing import Optional

from git_slurm.errors import GitSlurmError, git_reason
from git_slurm.gitcli import Git
from git_slurm.names import Oid

IDENTS = ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT")


def create_commit(git: Git, tree: Oid, parents: list[Oid], message: str) -> Oid:
    """A commit object that no ref points to yet."""
    author, committer = git_identities(git) or (fallback_identity(),) * 2
    headers = [f"tree {tree}", *(f"parent {p}" for p in parents)]
    headers += [f"author {author}", f"committer {committer}"]
    text = "\n".join(headers) + "\n\n" + message
    rc, out, err = git.run("hash-object", "-t", "commit", "-w", "--stdin", stdin=text, check=False)
    if rc != 0:
        raise GitSlurmError(f"cannot write the snapshot commit: {git_reason(err)}")
    return Oid(out.strip())


def git_identities(git: Git) -> Optional[tuple[str, str]]:
    """(author, committer) as git writes them (`Name <email> 1700000000 +0100`); None when git
    knows no identity."""
    rc, out, _ = git.run("var", "-l", check=False)
    found = dict(line.split("=", 1) for line in out.splitlines() if line.startswith(IDENTS))
    author, committer = (found.get(key, "") for key in IDENTS)
    if rc != 0 or not _named(author) or not _named(committer):
        return None
    return author, committer


def _named(ident: str) -> bool:
    name, sep, rest = ident.partition(" <")
    return bool(name.strip()) and bool(sep) and ">" in rest


def fallback_identity() -> str:
    """A sane identity from the login and the host, now, in the local time zone."""
    user = getpass.getuser() or "git-slurm"
    offset = time.localtime().tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    zone = f"{sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
    return f"{user} <{user}@{socket.gethostname() or 'localhost'}> {int(time.time())} {zone}"
