"""git-lfs files in a snapshot worktree: content from the local LFS store, never downloaded.

The snapshot commit records LFS pointers, as `git add` does (capture runs git's clean filter).
git-slurm's own checkouts leave pointers (gitcli.NEVER_DOWNLOAD), and `git lfs checkout` then
replaces each one whose content the local store has (the repository's common `lfs/objects`,
shared by every worktree) without any network access. A file whose content is not local stays
a pointer, and the snapshot says so: a job on a compute node must not start downloads.
"""

from __future__ import annotations

import re
import shutil

from git_slurm.gitcli import Git

# git-lfs's own words (LC_ALL=C keeps them English) for a pointer it could not fill
NOT_LOCAL = re.compile(r'^Skipped checkout for "(.*)", content not local', re.MULTILINE)


def uses_lfs(git: Git) -> bool:
    """Is git-lfs's filter configured for this repository (`git lfs install`)?"""
    rc, _, _ = git.run("config", "--get-regexp", r"^filter\.lfs\.(process|smudge)$", check=False)
    return rc == 0


def fill_in(git: Git) -> list[str]:
    """Replace the LFS pointers in `git`'s work tree by their content from the local store;
    the paths left as pointers (content not local). git-lfs writes a new file (a new inode)
    for each, so a hard-linked pointer shared with another snapshot stays as it was there."""
    if shutil.which("git-lfs") is None:
        return ["(git-lfs is configured but not installed: every LFS file is a pointer)"]
    _, out, err = git.run("lfs", "checkout", env={"LC_ALL": "C"})
    return NOT_LOCAL.findall(out + err)
