"""How much disk removing directories gives back, measured without following any symlink.

Snapshot worktrees hard-link the files they share (materialize.py): 200 snapshots of a
50,000-file repository are 10 million names of little more than 50,000 files. A file's blocks
and link count belong to its inode, not to a name, and a directory's entries carry the inode
number of each name (`DirEntry.inode()`, no stat): so a `Scan` reads every directory, stats
each directory and each *inode* once, and the cost follows the distinct files rather than the
names (benchmarks/gc_bench.py). The counts are those of an lstat of every name, as du makes
them: where a file system's entries do not carry the inode the name has (overlayfs without
xino), the scan finds out at the first file and stats every name from then on.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

# An inode as one int, (st_dev << 64) | st_ino: hashed fast, and one object for all its names.
Inode = int
# a regular file with several links: (its Inode, st_nlink, bytes of its blocks)
SharedFile = tuple[Inode, int, int]


@dataclass
class Usage:
    """Blocks only this tree holds, and its names of files that have hard links elsewhere too.

    Snapshot worktrees hard-link the files they share (materialize.py): such a file's blocks
    are freed only when every one of its links goes, which `freed` works out across all the
    trees removed together.
    """

    bytes: int = 0
    # one entry per name found here of a shared file (twice when it has two names here)
    links: list[Inode] = field(default_factory=list)
    # what is known of each shared file (a table the usages of one Scan have in common)
    files: dict[Inode, SharedFile] = field(default_factory=dict)

    @property
    def shared_files(self) -> int:
        return len(set(self.links))

    @property
    def fair_share(self) -> int:
        """The blocks this tree holds when each hard-linked file counts by the share of its
        links found here: what one snapshot among others that share its files "holds"."""
        shares = Counter(self.links).items()
        return self.bytes + sum(self.files[k][2] * seen // self.files[k][1] for k, seen in shares)

    def merge(self, other: Usage) -> None:
        self.bytes += other.bytes
        self.links.extend(other.links)
        if other.files is not self.files:
            self.files.update(other.files)


class Scan:
    """The usage of several trees, each inode stat'ed once however many names it has here.

    The link counts are those of each file's first stat: measure every tree before removing
    any (a link count read after a sibling's removal would make the shared data look like
    the other's alone).
    """

    def __init__(self) -> None:
        self.files: dict[Inode, SharedFile] = {}
        self.other: dict[Inode, int] = {}  # bytes of a non-regular inode with several links
        self.entries_carry_inodes = True

    def usage(self, root: Path) -> Usage:
        """What removing `root` frees, as du counts blocks. A symlink counts as itself, never
        as what it points to: a snapshot's links lead to the user's outputs."""
        usage = Usage(files=self.files)
        try:
            top = root.lstat()
        except OSError:
            return usage
        self._count(usage, top)
        if stat.S_ISDIR(top.st_mode):
            self._walk(usage, str(root), top.st_dev)
        return usage

    def _walk(self, usage: Usage, root: str, device: int) -> None:
        pending = [(root, device)]
        while pending:
            directory, device = pending.pop()
            try:
                with os.scandir(directory) as entries:
                    listed = list(entries)
            except OSError:
                continue
            for entry in listed:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        info = entry.stat(follow_symlinks=False)
                        usage.bytes += info.st_blocks * 512  # a directory is never shared
                        pending.append((entry.path, info.st_dev))
                    else:
                        self._name(usage, entry, device)
                except OSError:
                    continue

    def _name(self, usage: Usage, entry: os.DirEntry[str], device: int) -> None:
        """Count one non-directory name: from what its inode's first name told, if known."""
        if self.entries_carry_inodes:
            key = (device << 64) | entry.inode()
            known = self.files.get(key)
            if known is not None:
                usage.links.append(known[0])
                return
            if key in self.other:
                usage.bytes += self.other[key]
                return
        info = entry.stat(follow_symlinks=False)
        if self.entries_carry_inodes and (info.st_dev, info.st_ino) != (device, entry.inode()):
            self.entries_carry_inodes = False
        self._count(usage, info)

    def _count(self, usage: Usage, info: os.stat_result) -> None:
        size = info.st_blocks * 512
        if info.st_nlink <= 1:
            usage.bytes += size  # its only name: nothing to remember
            return
        key = (info.st_dev << 64) | info.st_ino
        if not stat.S_ISREG(info.st_mode):
            self.other[key] = size  # (a hard-linked symlink: materialize links them too)
            usage.bytes += size
            return
        known = self.files.setdefault(key, (key, info.st_nlink, size))
        usage.links.append(known[0])


def freeable(root: Path) -> Usage:
    """What removing `root` alone frees (see `Scan.usage`)."""
    return Scan().usage(root)


def freed(usages: Iterable[Usage]) -> tuple[int, int]:
    """(bytes freed, hard-linked files still linked from elsewhere) when all `usages` go.

    A shared file counts once, and only when all its links were among them; the others keep
    their data alive, so the byte count is exact unless that second number is above zero.
    """
    listed = list(usages)
    files: dict[Inode, SharedFile] = {}
    for table in {id(u.files): u.files for u in listed}.values():  # mostly one Scan's
        files.update(table)
    seen = Counter(chain.from_iterable(u.links for u in listed))  # counted in C
    gone = [files[key][2] for key, links in seen.items() if links >= files[key][1]]
    return sum(u.bytes for u in listed) + sum(gone), len(seen) - len(gone)


def human_bytes(count: int) -> str:
    """`0 B`, `512 B`, `12.3 KiB`, `1.5 GiB`."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
