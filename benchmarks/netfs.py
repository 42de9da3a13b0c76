"""Snapshots on a network filesystem: where each file or link costs a round trip.

    .venv/bin/python benchmarks/netfs.py                      # all filesystems, small + medium
    .venv/bin/python benchmarks/netfs.py --fs sshfs,fuse-2ms --sizes small --reps 1

Options: --fs LIST (local, sshfs, fuse-0ms, fuse-0.5ms, fuse-2ms; default all), --sizes LIST
(refrepo sizes, default small,medium: 500 and 2000 tracked sources), --reps N (default 2),
--root DIR (default /tmp/git-slurm-bench-net), --json FILE, --markdown FILE.

Root only, on a machine with FUSE (/dev/fuse) and, for sshfs, the Debian packages sshfs and
openssh-server: it starts its own sshd on 127.0.0.1:2222 (loopback only, a key of its own, no
password) for the run and stops it after. fuse-N ms is fuse_delay.py, a passthrough that waits
N ms on every metadata operation (a distant metadata server), run from .bench-venvs/fuse
(mfusepy, installed on first use); fuse-0ms is the same without the wait (the passthrough's own
cost). The repository stays on the local disk, as the user's checkout; `slurm.worktreeDir`,
and the baseline's worktree, are on the filesystem measured.

Cases, in an order rotated every repetition: `git worktree add --detach` (the baseline), then
the snapshot chain: fresh (no snapshot), reused (same tree), one file edited (incremental,
hard links from the fresh one), and `git slurm-gc --older-than now` removing both. What a case
leaves is removed untimed through the backing directory (names are never reused, so the
kernel's name cache cannot go stale).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import bench_venvs
import refrepo
from cases import EDITED, SNAPSHOT, _path_taken
from common import load_average, machine, run, sealed_environment, write_report

from git_slurm.records import RECORD_NAME

HERE = Path(__file__).resolve().parent
SSH_PORT = 2222
FILESYSTEMS = ["local", "sshfs", "fuse-0ms", "fuse-0.5ms", "fuse-2ms"]
CASES = ["worktree add", "fresh", "reused", "edited", "gc"]
AN_HOUR = 3600.0


@dataclass
class Results:
    machine: str
    started: str
    load_before: str
    reps: int
    files: dict[str, int] = field(default_factory=dict)  # size -> tracked files
    load_after: str = ""
    seconds: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    linked: dict[str, int] = field(default_factory=dict)  # size -> files the incremental linked

    def add(self, fs: str, size: str, case: str, value: float) -> None:
        self.seconds.setdefault(fs, {}).setdefault(size, {}).setdefault(case, []).append(value)


# ---- filesystems ---------------------------------------------------------------------------


class Mounts:
    """The filesystems measured: each a backing dir on the local disk and where it is seen."""

    def __init__(self, root: Path, names: list[str]) -> None:
        self.root = root
        self.names = names
        self.procs: list[subprocess.Popen[bytes]] = []
        self.sshd_pid: Optional[int] = None

    def backing(self, name: str) -> Path:
        return self.root / "backing" / name

    def seen(self, name: str) -> Path:
        return self.backing(name) if name == "local" else self.root / "mnt" / name

    def __enter__(self) -> Mounts:
        try:
            for name in self.names:
                self.backing(name).mkdir(parents=True, exist_ok=True)
                if name == "local":
                    continue
                self.seen(name).mkdir(parents=True, exist_ok=True)
                if name == "sshfs":
                    self.mount_sshfs()
                else:
                    self.mount_delay(name, float(name[len("fuse-") : -len("ms")]))
                deadline = time.monotonic() + 20
                while not os.path.ismount(self.seen(name)):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{name} did not mount at {self.seen(name)}")
                    time.sleep(0.1)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.names:
            if name != "local" and os.path.ismount(self.seen(name)):
                subprocess.run(["fusermount3", "-u", "-z", str(self.seen(name))], check=False)
        for proc in self.procs:
            proc.terminate()
            proc.wait(timeout=10)
        if self.sshd_pid is not None:
            os.kill(self.sshd_pid, 15)

    def mount_delay(self, name: str, delay_ms: float) -> None:
        python = bench_venvs.venv("fuse", ["mfusepy==3.1.1"], say, hook=False)
        argv = [str(python), str(HERE / "fuse_delay.py"), str(self.backing(name)),
                str(self.seen(name)), str(delay_ms)]  # fmt: skip
        log = (self.root / f"{name}.log").open("wb")
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))

    def mount_sshfs(self) -> None:
        ssh = self.root / "ssh"
        ssh.mkdir(exist_ok=True)
        for key in ("host", "client"):
            if not (ssh / key).exists():
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / key)],
                    check=True,
                )
        shutil.copy(ssh / "client.pub", ssh / "authorized_keys")
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        subprocess.run(
            ["/usr/sbin/sshd", "-f", "/dev/null", "-o", f"Port={SSH_PORT}",
             "-o", "ListenAddress=127.0.0.1", "-o", f"HostKey={ssh / 'host'}",
             "-o", f"AuthorizedKeysFile={ssh / 'authorized_keys'}",
             "-o", "PermitRootLogin=prohibit-password", "-o", "PasswordAuthentication=no",
             "-o", "Subsystem=sftp internal-sftp", "-o", f"PidFile={ssh / 'sshd.pid'}",
             "-o", "StrictModes=no", "-E", str(ssh / "sshd.log")],
            check=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not (ssh / "sshd.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.sshd_pid = int((ssh / "sshd.pid").read_text())
        options = (
            f"IdentityFile={ssh / 'client'},StrictHostKeyChecking=no,"
            f"UserKnownHostsFile={ssh / 'known_hosts'},BatchMode=yes"
        )  # sshfs 3 has no use_ino: each path gets an inode number of its own
        subprocess.run(
            ["sshfs", "-p", str(SSH_PORT), "-o", options,
             f"root@127.0.0.1:{self.backing('sshfs')}", str(self.seen("sshfs"))],
            check=True,
        )  # fmt: skip


# ---- cases ---------------------------------------------------------------------------------


class Bench:
    def __init__(self, root: Path, size: refrepo.Size) -> None:
        self.env = sealed_environment(root / "home")
        self.size = size
        self.repo = refrepo.prepare(root, size, self.env)
        self.serial = 0

    def fresh_name(self, where: Path, what: str) -> Path:
        self.serial += 1
        return where / f"{self.size.name}-{what}-{os.getpid()}-{self.serial}"

    def worktree_add(self, seen: Path, backing: Path) -> float:
        path = self.fresh_name(seen, "baseline")
        os.sync()
        seconds = run(
            ["git", "worktree", "add", "-q", "--detach", str(path), "HEAD"], self.repo, self.env
        ).seconds
        shutil.rmtree(backing / path.name)
        run(["git", "worktree", "prune"], self.repo, self.env)
        return seconds

    def chain(self, seen: Path, backing: Path) -> tuple[dict[str, float], int]:
        """fresh, reused, edited, gc: their seconds, and how many files the edited one linked."""
        where = self.fresh_name(seen, "snapshots")
        run(["git", "config", "slurm.worktreeDir", str(where)], self.repo, self.env)
        times = {
            "fresh": self.snapshot("checkout").seconds,
            "reused": self.snapshot("reused").seconds,
        }
        edited = self.repo / EDITED
        original = edited.read_bytes()
        edited.write_bytes(original + b"# one more line\n")
        try:
            ran = self.snapshot("linked" if self.links else "checkout")
        finally:
            edited.write_bytes(original)
        times["edited"] = ran.seconds
        linked = int((json.loads(ran.stdout).get("materialised") or {}).get("linked", -1))
        backdate(self.repo / ".git" / "worktrees", AN_HOUR)
        os.sync()
        gc = run(["git", "slurm-gc", "--older-than", "now", "--json"], self.repo, self.env)
        times["gc"] = gc.seconds
        removed = json.loads(gc.stdout).get("removed")
        if removed != 2:
            raise RuntimeError(f"gc removed {removed} worktrees, expected 2: {gc.stdout[-1500:]}")
        refrepo.remove_snapshots(self.repo, self.env)
        shutil.rmtree(backing / where.name, ignore_errors=True)
        return times, linked

    links = True  # False where git-slurm cannot link (sshfs: no stable inode numbers)

    def snapshot(self, expect: str) -> Any:
        os.sync()
        ran = run([*SNAPSHOT], self.repo, self.env)
        took = _path_taken(json.loads(ran.stdout))
        if took != expect:
            raise RuntimeError(f"expected a {expect} snapshot, got {took}: {ran.stdout}")
        return ran


def backdate(admin_dirs: Path, seconds: float) -> None:
    """Make the snapshots look `seconds` older (untimed): gc keeps a snapshot whose launch has
    not recorded jobs for records.HANDOFF_GRACE (15 min), also one made by hand."""
    for admin in admin_dirs.iterdir():
        record = admin / RECORD_NAME
        if not record.exists():
            continue  # a baseline's, pruned once the mount forgets its worktree
        data = json.loads(record.read_text())
        for key in ("created", "last_used"):
            data[key] -= seconds
        for launch in data["launches"]:
            launch["time"] -= seconds
        record.write_text(json.dumps(data, indent=2) + "\n")
        for path in [admin, *admin.iterdir(), Path(data["worktree"])]:
            info = path.lstat()
            os.utime(path, (info.st_atime - seconds, info.st_mtime - seconds))


def measure(args: argparse.Namespace) -> Results:
    root = Path(args.root)
    results = Results(machine(), dt.datetime.now().isoformat(), load_average(), args.reps)
    benches = {name: Bench(root, refrepo.SIZES[name]) for name in args.sizes}
    for name, bench in benches.items():
        results.files[name] = len(refrepo.tracked_files(bench.repo, bench.env))
    with Mounts(root, args.fs) as mounts:
        for rep in range(args.reps):
            for fs in args.fs:
                seen, backing = mounts.seen(fs), mounts.backing(fs)
                for bench in benches.values():
                    bench.links = fs != "sshfs"
                for size, bench in benches.items():
                    steps = ["baseline", "chain"][rep % 2 :] + ["baseline", "chain"][: rep % 2]
                    for step in steps:
                        if step == "baseline":
                            results.add(fs, size, "worktree add", bench.worktree_add(seen, backing))
                            continue
                        times, linked = bench.chain(seen, backing)
                        results.linked[size] = linked
                        for case, value in times.items():
                            results.add(fs, size, case, value)
                    say(f"rep {rep + 1}/{args.reps} {fs} {size} done; load {load_average()}")
    for bench in benches.values():
        run(["git", "config", "--unset", "slurm.worktreeDir"], bench.repo, bench.env)
        refrepo.reset(bench.repo, bench.size, bench.env)
    results.load_after = load_average()
    return results


# ---- report --------------------------------------------------------------------------------


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def med(values: list[float]) -> float:
    return statistics.median(values)


def report(results: Results) -> str:
    sizes = list(results.files)
    lines = [
        "### Snapshots on network filesystems",
        "",
        f"Machine: {results.machine}. Load average (1/5/15 min) before: {results.load_before},"
        f" after: {results.load_after}. {results.started[:16]}. {results.reps} repetitions,"
        " medians (min - max); the ratio is to `git worktree add` on the same filesystem.",
        "",
        "| filesystem | tracked files | " + " | ".join(CASES) + " |",
        "|---|---|" + "---|" * len(CASES),
    ]
    for fs, by_size in results.seconds.items():
        for size in sizes:
            got = by_size.get(size, {})
            base = med(got["worktree add"])
            cells = []
            for case in CASES:
                values = got[case]
                cell = seconds(med(values))
                if len(values) > 1:
                    cell += f" ({seconds(min(values))} - {seconds(max(values))})"
                if case != "worktree add":
                    cell += f", {med(values) / base:.2f}x"
                cells.append(cell)
            lines.append(f"| {fs} | {results.files[size]} | {' | '.join(cells)} |")
    lines += ["", *growth(results, sizes)]
    return "\n".join(lines)


def growth(results: Results, sizes: list[str]) -> list[str]:
    """How the one-file incremental grows with the repository's file count, per filesystem."""
    if len(sizes) < 2:
        return []
    small, large = sizes[0], sizes[-1]
    extra = results.files[large] - results.files[small]
    lines = [
        f"One file edited, {results.files[small]} against {results.files[large]} tracked files "
        f"(the incremental linked {results.linked.get(small)} and {results.linked.get(large)} "
        "files):",
        "",
        "| filesystem | incremental, small | large | per 1000 more files | worktree add per 1000 |",
        "|---|---|---|---|---|",
    ]
    for fs, by_size in results.seconds.items():
        a, b = med(by_size[small]["edited"]), med(by_size[large]["edited"])
        wa, wb = med(by_size[small]["worktree add"]), med(by_size[large]["worktree add"])
        lines.append(
            f"| {fs} | {seconds(a)} | {seconds(b)} | {seconds((b - a) / extra * 1000)} "
            f"| {seconds((wb - wa) / extra * 1000)} |"
        )
    return lines


def parse(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fs", default=",".join(FILESYSTEMS))
    parser.add_argument("--sizes", default="small,medium")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--root", default="/tmp/git-slurm-bench-net")
    parser.add_argument("--json")
    parser.add_argument("--markdown")
    args = parser.parse_args(argv)
    args.fs = args.fs.split(",")
    args.sizes = args.sizes.split(",")
    unknown = [fs for fs in args.fs if fs not in FILESYSTEMS]
    unknown += [size for size in args.sizes if size not in refrepo.SIZES]
    if unknown or args.reps < 1:
        parser.error(f"unknown filesystem or size: {unknown}" if unknown else "--reps >= 1")
    return args


def say(text: str) -> None:
    print(f"[netfs] {text}", file=sys.stderr, flush=True)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse(argv)
    if os.geteuid() != 0 or not Path("/dev/fuse").exists():
        print("error: netfs.py needs root and /dev/fuse", file=sys.stderr)
        return 2
    results = measure(args)
    text = report(results)
    write_report(text, asdict(results), args.markdown, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
