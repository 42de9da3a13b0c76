"""A file system that gives every name its own inode number (sshfs 3, which has no use_ino):
a linked worktree would match none of its copied stat cache, so git-slurm checks the first
hard link and checks out at once, instead of linking every file only to throw them away.

The sshfs here is real: sshfs itself, over a real sftp-server (run directly as sshfs's "ssh"
command, so no sshd is needed), whose log counts the hard links that reached the server."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from gitrepo import Repo
from needs import unavailable

SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/lib/sftp-server", "/usr/libexec/sftp-server")


class Sshfs:
    def __init__(self, root: Path) -> None:
        self.backing = root / "backing"
        self.seen = root / "seen"
        self.log = root / "sftp.log"

    def hard_links(self) -> int:
        return sum(line.startswith("hardlink ") for line in self.log.read_text().splitlines())


@pytest.fixture
def sshfs(tmp_path: Path) -> Iterator[Sshfs]:
    server = next((s for s in SFTP_SERVERS if Path(s).exists()), None)
    unmount = shutil.which("fusermount3") or shutil.which("fusermount")
    if not (shutil.which("sshfs") and server and unmount and Path("/dev/fuse").exists()):
        unavailable("needs sshfs, an sftp-server, fusermount and /dev/fuse")
    mount = Sshfs(tmp_path / "sshfs")
    mount.backing.mkdir(parents=True)
    mount.seen.mkdir()
    fake_ssh = mount.seen.parent / "ssh"
    fake_ssh.write_text(f"#!/bin/sh\nexec {server} -e -l INFO 2>>{mount.log}\n")
    fake_ssh.chmod(0o755)
    done = subprocess.run(
        ["sshfs", "-o", f"ssh_command={fake_ssh}", f"localhost:{mount.backing}", str(mount.seen)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        unavailable(f"sshfs did not mount: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run([unmount, "-u", str(mount.seen)], check=False)


def test_sshfs_gives_a_hard_link_its_own_inode_number(sshfs: Sshfs) -> None:
    """What the rest relies on, so that a fixed sshfs shows here rather than as a mystery."""
    (sshfs.seen / "a").write_text("a\n")
    (sshfs.seen / "b").hardlink_to(sshfs.seen / "a")
    assert (sshfs.seen / "a").lstat().st_ino != (sshfs.seen / "b").lstat().st_ino


def test_snapshot_on_sshfs_checks_out_after_one_hard_link(repo: Repo, sshfs: Sshfs) -> None:
    for n in range(30):
        repo.write(f"pkg/m{n}.py", f"n = {n}\n")
    repo.commit("thirty files")
    repo.git("config", "slurm.worktreeDir", str(sshfs.seen / "snapshots"))
    first = repo.snapshot_json("--no-push")
    assert first["materialised"]["source"] is None
    before = sshfs.hard_links()
    repo.write("pkg/m0.py", "n = 'edited'\n")
    second = repo.snapshot_json("--no-push")
    assert second["materialised"]["source"] is None  # a checkout, as before
    assert sshfs.hard_links() - before == 1  # the probe alone, not one per file
    worktree = Path(second["worktree"])
    assert (worktree / "pkg/m0.py").read_text() == "n = 'edited'\n"
    assert (worktree / "pkg/m29.py").read_text() == "n = 29\n"
    assert not (worktree / "pkg/m1.py").stat().st_mode & 0o222  # read-only, as any checkout
