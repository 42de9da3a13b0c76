"""How much disk removing directories gives back, measured without following any symlink."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

Inode = tuple[int, int]  # (st_dev, st_ino)


@dataclass
class Usage:
    """Blocks only this tree holds, and its files that have hard links elsewhere too.

    Snapshot worktrees hard-link the files they share (materialize.py): such a file's blocks
    are freed only when every one of its links goes, which `freed` works out across all the
    trees removed together.
    """

    bytes: int = 0
    shared: dict[Inode, tuple[int, int, int]] = field(default_factory=dict)  # nlink, bytes, seen

    @property
    def shared_files(self) -> int:
        return len(self.shared)

    @property
    def fair_share(self) -> int:
        """The blocks this tree holds when each hard-linked file counts by the share of its
        links found here: what one snapshot among others that share its files "holds"."""
        return self.bytes + sum(size * seen // nlink for nlink, size, seen in self.shared.values())

    def add(self, info: os.stat_result) -> None:
        if not self.add_shared(info):
            self.bytes += info.st_blocks * 512

    def add_shared(self, info: os.stat_result) -> bool:
        """Count `info` among the shared files if it is one (a regular file of several links)."""
        if info.st_nlink <= 1 or not stat.S_ISREG(info.st_mode):
            return False
        key = (info.st_dev, info.st_ino)
        known = self.shared.get(key)
        self.shared[key] = (info.st_nlink, info.st_blocks * 512, known[2] + 1 if known else 1)
        return True

    def merge(self, other: Usage) -> None:
        self.bytes += other.bytes
        shared = self.shared
        for key, entry in other.shared.items():
            known = shared.get(key)
            shared[key] = (entry[0], entry[1], known[2] + entry[2]) if known else entry


def freeable(root: Path) -> Usage:
    """What removing `root` frees, as du counts blocks. A symlink counts as itself, never as
    what it points to: a snapshot's links lead to the user's outputs."""
    usage = Usage()
    try:
        top = root.lstat()
    except OSError:
        return usage
    usage.add(top)
    pending = [str(root)] if stat.S_ISDIR(top.st_mode) else []
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                listed = list(entries)
        except OSError:
            continue
        own = 0  # this loop runs once per file: its sum stays local
        for entry in listed:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not usage.add_shared(info):
                own += info.st_blocks * 512
                if stat.S_ISDIR(info.st_mode):
                    pending.append(entry.path)
        usage.bytes += own
    return usage


def freed(usages: Iterable[Usage]) -> tuple[int, int]:
    """(bytes freed, hard-linked files still linked from elsewhere) when all `usages` go.

    A shared file counts once, and only when all its links were among them; the others keep
    their data alive, so the byte count is exact unless that second number is above zero.
    """
    total = Usage()
    for usage in usages:
        total.merge(usage)
    gone = [size for nlink, size, seen in total.shared.values() if seen >= nlink]
    return total.bytes + sum(gone), len(total.shared) - len(gone)


def human_bytes(count: int) -> str:
    """`0 B`, `512 B`, `12.3 KiB`, `1.5 GiB`."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
