"""A FUSE passthrough that waits a fixed time on every metadata operation: a distant metadata
server (NFS, Lustre's MDS, GPFS) on a machine that has FUSE but no NFS client and no netem.

    python fuse_delay.py BACKING MOUNTPOINT DELAY_MS      # stays in the foreground

Runs with mfusepy (libfuse 3; netfs.py installs it into .bench-venvs/fuse). Every operation
on names and attributes (lookup/getattr, access, open, create, mkdir, rmdir, unlink, link,
symlink, readlink, rename, chmod, chown, utimens, truncate, readdir, statfs) sleeps DELAY_MS
first, as a round trip would; reading and writing file data does not. libfuse's defaults stay:
the kernel caches attributes and names for 1 s, as NFS caches attributes. Requests are served
by several threads, as a server serves concurrent clients.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time
from typing import Any, Optional

import mfusepy as fuse  # type: ignore[import-not-found]


class DelayedLoopback(fuse.Operations):  # type: ignore[misc]
    use_ns = True

    def __init__(self, root: str, delay: float) -> None:
        self.root = os.path.realpath(root)
        self.delay = delay

    def at(self, path: str) -> str:
        """The backing path of `path`, after one round trip's wait (metadata operations)."""
        if self.delay:
            time.sleep(self.delay)
        return self.root + path

    def access(self, path: str, mode: int) -> int:
        path = self.at(path)
        if not os.access(path, mode, follow_symlinks=False):
            raise fuse.FuseOSError(errno.EACCES)
        return 0

    def chmod(self, path: str, mode: int) -> int:
        path = self.at(path)
        os.chmod(path, mode, follow_symlinks=False)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        path = self.at(path)
        os.lchown(path, uid, gid)
        return 0

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        path = self.at(path)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def flush(self, path: str, fh: int) -> int:
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        (os.fdatasync if datasync else os.fsync)(fh)
        return 0

    def getattr(self, path: str, fh: Optional[int] = None) -> dict[str, Any]:
        path = self.at(path)
        st = os.lstat(path)
        attrs = {key: getattr(st, key) for key in ATTRS}
        attrs.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
        return attrs

    def link(self, target: str, source: str) -> int:
        os.link(self.root + source, self.at(target), follow_symlinks=False)
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        path = self.at(path)
        os.mkdir(path, mode)
        return 0

    def open(self, path: str, flags: int) -> int:
        path = self.at(path)
        return os.open(path, flags)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def readdir(self, path: str, fh: int) -> list[Any]:
        path = self.at(path)
        # with use_ino each entry needs its inode number: readdir(3) skips entries without one
        here = os.lstat(path)
        entries: list[Any] = [(".", {"st_ino": here.st_ino, "st_mode": here.st_mode}, 0)]
        entries.append(("..", {"st_ino": 1, "st_mode": stat.S_IFDIR}, 0))
        with os.scandir(path) as listing:
            for entry in listing:
                mode = entry.stat(follow_symlinks=False).st_mode
                entries.append((entry.name, {"st_ino": entry.inode(), "st_mode": mode}, 0))
        return entries

    def readlink(self, path: str) -> str:
        path = self.at(path)
        return os.readlink(path)

    def release(self, path: str, fh: int) -> int:
        os.close(fh)
        return 0

    def rename(self, old: str, new: str) -> int:
        os.rename(self.at(old), self.root + new)
        return 0

    def rmdir(self, path: str) -> int:
        path = self.at(path)
        os.rmdir(path)
        return 0

    def statfs(self, path: str) -> dict[str, Any]:
        path = self.at(path)
        st = os.statvfs(path)
        return {key: getattr(st, key) for key in STATFS}

    def symlink(self, target: str, source: str) -> int:
        os.symlink(source, self.at(target))
        return 0

    def truncate(self, path: str, length: int, fh: Optional[int] = None) -> int:
        path = self.at(path)
        if fh is None:
            os.truncate(path, length)
        else:
            os.ftruncate(fh, length)
        return 0

    def unlink(self, path: str) -> int:
        path = self.at(path)
        os.unlink(path)
        return 0

    def utimens(self, path: str, times: Optional[tuple[int, int]] = None) -> int:
        path = self.at(path)
        if times is None:
            os.utime(path, follow_symlinks=False)
        else:
            os.utime(path, ns=times, follow_symlinks=False)
        return 0

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return os.pwrite(fh, data, offset)


ATTRS = ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks")
STATFS = (
    "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag",
    "f_frsize", "f_namemax",
)  # fmt: skip


def main() -> None:
    backing, mountpoint, delay_ms = sys.argv[1], sys.argv[2], float(sys.argv[3])
    # use_ino: the backing files' inode numbers, stable as on NFS (git's stat cache checks them)
    fuse.FUSE(DelayedLoopback(backing, delay_ms / 1000), mountpoint, foreground=True, use_ino=True)


if __name__ == "__main__":
    main()
