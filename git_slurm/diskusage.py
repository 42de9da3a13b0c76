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
        size = info.st_blocks * 512
        if not stat.S_ISREG(info.st_mode) or info.st_nlink <= 1:
            self.bytes += size
            return
        key = (info.st_dev, info.st_ino)
        seen = self.shared.get(key, (0, 0, 0))[2]
        self.shared[key] = (info.st_nlink, size, seen + 1)

    def merge(self, other: Usage) -> None:
        self.bytes += other.bytes
        for key, (nlink, size, seen) in other.shared.items():
            self.shared[key] = (nlink, size, self.shared.get(key, (0, 0, 0))[2] + seen)


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
        for entry in listed:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            usage.add(info)
            if stat.S_ISDIR(info.st_mode):
                pending.append(entry.path)
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
