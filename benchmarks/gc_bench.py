"""What `git slurm-gc` costs with many snapshot worktrees of a big repository.

    .venv/bin/python benchmarks/gc_bench.py [--files 50000] [--worktrees 200] [--runs 3] [--json]
        [--trees BEFORE_DIR AFTER_DIR...]

Builds a throwaway repository of FILES tracked files (100 per directory) in a sealed HOME,
makes WORKTREES snapshot worktrees with `git slurm-snapshot` (each of a different tree, so
none is reused), and times `git slurm-gc --json` in three states:

  young    every worktree used within --older-than: no candidate, nothing to walk
  dry      every worktree old and unused (no job, no job-written file): all are candidates,
           `--dry-run` inspects each (git status, disk use) and removes nothing
  remove   the same, for real: every worktree goes

The goal (issue 12.8): `dry` within 10 s for 200 worktrees of 50,000 files, `young` ~0 per
worktree. Times are wall-clock medians over RUNS (remove runs once: it consumes the state),
with min-max, and the CPU time (user + system) of gc and its git processes.

With --trees, each source tree of git_slurm (`git archive COMMIT git_slurm | tar -x -C DIR`)
is put first on PYTHONPATH in turn, rotated every run, for `young` and `dry` on the same
worktrees: on a shared machine only a comparison made in one run means anything. `remove`
then runs once, with the last tree.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
PER_DIR = 100


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done


def sealed_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@example.com",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@example.com",
    )
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    return env


def build_repo(path: Path, files: int, env: dict[str, str]) -> None:
    path.mkdir(parents=True)
    run(["git", "init", "-q"], path, env)
    for n in range(files):
        directory = path / "src" / f"d{n // PER_DIR:04d}"
        if n % PER_DIR == 0:
            directory.mkdir(parents=True)
        (directory / f"m{n % PER_DIR:03d}.py").write_text(f"VALUE = {n}\n" + "# pad\n" * 20)
    (path / ".gitignore").write_text("outputs/\n")
    run(["git", "add", "-A"], path, env)
    run(["git", "commit", "-q", "-m", "reference"], path, env)


def make_snapshots(path: Path, count: int, env: dict[str, str]) -> list[Path]:
    worktrees = []
    for n in range(count):
        (path / "stamp.py").write_text(f"N = {n}\n")  # a new tree each time: never a reuse
        out = run(["git", "slurm-snapshot", "--json", "--no-push"], path, env).stdout
        worktrees.append(Path(json.loads(out)["worktree"]))
    return worktrees


def set_age(common_dir: Path, seconds_ago: float) -> None:
    """Every record's last use `seconds_ago` (gc reads nothing else for the age rule)."""
    from git_slurm.records import read_record, repository_lock, write_record

    now = time.time()
    with repository_lock(common_dir):
        for admin in (common_dir / "worktrees").iterdir():
            record = read_record(admin)
            if record is not None:
                record.created = record.last_used = now - seconds_ago
                record.launches = [replace(x, time=now - seconds_ago) for x in record.launches]
                write_record(admin, record)


def time_gc(path: Path, env: dict[str, str], *args: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    out = run(["git", "slurm-gc", "--json", "--older-than", "7d", *args], path, env).stdout
    return time.perf_counter() - started, json.loads(out)


def cpu_of_children() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


RETRIES = 5


def slurm_was_down(report: dict[str, Any]) -> bool:
    """gc kept every worktree because SLURM's controller did not answer (as it must)."""
    return any("cannot list your SLURM jobs" in w["detail"] for w in report["worktrees"])


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, path: Path, env: dict[str, str], expect: tuple[str, int], *args: str) -> None:
        for _ in range(RETRIES):
            cpu = cpu_of_children()
            seconds, report = time_gc(path, env, *args)
            if not slurm_was_down(report):
                break
            time.sleep(30)  # the shared test cluster restarts now and then: not a sample
        self.cpu.append(cpu_of_children() - cpu)
        self.wall.append(seconds)
        assert report[expect[0]] == expect[1], report["worktrees"][:2]

    def summary(self) -> dict[str, float]:
        return {
            "median_s": round(statistics.median(self.wall), 3),
            "min_s": round(min(self.wall), 3),
            "max_s": round(max(self.wall), 3),
            "cpu_s": round(statistics.median(self.cpu), 3),
        }


def compare(repo: Path, env: dict[str, str], trees: list[Path], runs: int) -> dict[str, Any]:
    """young and dry for every tree, the trees rotated each run."""
    common, count = repo / ".git", len(list((repo / ".git" / "worktrees").iterdir()))
    samples: dict[str, Samples] = {}
    for state, age, expect in (("young", 3600, "kept"), ("dry", 30 * 86400, "removed")):
        set_age(common, age)
        for n in range(runs):
            for tree in trees[n % len(trees) :] + trees[: n % len(trees)]:
                tree_env = {**env, "PYTHONPATH": str(tree.resolve())}
                key = f"{state} {tree}"
                samples.setdefault(key, Samples()).add(repo, tree_env, (expect, count), "-n")
    return {key: s.summary() for key, s in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--worktrees", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--trees", nargs="+", type=Path, default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gc-bench-") as tmp:
        root = Path(tmp)
        (root / "home").mkdir()
        env = sealed_env(root / "home")
        repo = root / "repo"
        began = time.perf_counter()
        build_repo(repo, args.files, env)
        worktrees = make_snapshots(repo, args.worktrees, env)
        setup = time.perf_counter() - began
        common = repo / ".git"
        results: dict[str, Any] = {"files": args.files, "worktrees": len(worktrees)}
        results["setup_s"] = round(setup, 1)
        if args.trees:
            results["compare"] = compare(repo, env, args.trees, args.runs)
            env = {**env, "PYTHONPATH": str(args.trees[-1].resolve())}
        else:
            set_age(common, 3600)
            young = [time_gc(repo, env, "--dry-run") for _ in range(args.runs)]
            assert all(r["kept"] == len(worktrees) for _, r in young)
            set_age(common, 30 * 86400)
            dry = [time_gc(repo, env, "--dry-run") for _ in range(args.runs)]
            assert all(r["removed"] == len(worktrees) for _, r in dry), dry[0][1]["worktrees"][:2]
            results.update(
                young_s=round(statistics.median(t for t, _ in young), 3),
                dry_s=round(statistics.median(t for t, _ in dry), 3),
            )
        set_age(common, 30 * 86400)
        removed_s, removed = time_gc(repo, env)
        assert removed["removed"] == len(worktrees) and not any(w.exists() for w in worktrees)
        results.update(remove_s=round(removed_s, 3), freed_bytes=removed["freed_bytes"])
    if args.json:
        print(json.dumps(results))
    else:
        for key, summary in results.get("compare", {}).items():
            print(f"  {key}: {summary}")
        n = results["worktrees"]
        print(f"{n} worktrees of {results['files']} files (setup {results['setup_s']} s)")
        for key in ("young", "dry", "remove"):
            if f"{key}_s" in results:
                seconds = results[f"{key}_s"]
                print(
                    f"  {key:<7} {seconds:8.3f} s  ({1000 * seconds / max(n, 1):.1f} ms/worktree)"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
