"""What a job's start check costs (git_slurm/jobstart.py), on the reference repository.

    .venv/bin/python benchmarks/job_check.py [--size full] [--runs 21] [--json]

Builds the reference repository (benchmarks/refrepo.py, cached) under its own root, so that
other benchmarks' copies are never reset under them; snapshots it twice, the second made from
hard links to the first as consecutive launches are; then times, interleaved so that the
machine's mood hits all alike, the job-setup check line that the launcher writes for the
second snapshot, run by bash in its working directory as a job's batch script runs it:

  clean    nothing changed: git alone compares every tracked file's stat data with the index
  changed  one module written in place before each run (outside the timing), as a root job of
           the first snapshot does through the shared inode: git finds it, then Python starts
           and restores it under the worktree's lock
  python   the interpreter starting isolated and importing git_slurm.jobstart, nothing else
           (the floor of `changed`)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import refrepo
from common import load_average, machine, sealed_environment

from git_slurm.jobstart import check_line

ROOT = Path("/tmp/git-slurm-bench-jobcheck")


def snapshot(repo: Path, env: dict[str, str]) -> dict[str, str]:
    done = subprocess.run(
        ["git", "slurm-snapshot", "--json", "--no-push"],
        cwd=repo, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    data: dict[str, str] = json.loads(done.stdout)
    return data


def timed_ms(argv: list[str], cwd: str, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    ms = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed: {done.stderr}")
    return ms, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="full", choices=sorted(refrepo.SIZES))
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    env = sealed_environment(ROOT / "home")
    size = refrepo.SIZES[args.size]
    repo = refrepo.prepare(ROOT, size, env)
    first = snapshot(repo, env)
    (repo / "src" / "bench_marker.py").parent.mkdir(exist_ok=True)
    (repo / "src" / "bench_marker.py").write_text("MARK = 1\n")
    second = snapshot(repo, env)
    workdir, worktree = second["workdir"], Path(second["worktree"])
    line = check_line(worktree, second["commit"], second["branch"])
    victim = next(
        p
        for p in sorted(worktree.rglob("*.py"))
        if (Path(first["worktree"]) / p.relative_to(worktree)).exists()
    )
    pristine = victim.read_text()
    floor = [sys.executable, "-I", "-c", "import git_slurm.jobstart"]
    times: dict[str, list[float]] = {"clean": [], "changed": [], "python": []}
    for _ in range(args.runs):
        times["clean"].append(timed_ms(["bash", "-c", line], workdir, env)[0])
        with victim.open("w") as handle:  # root: the read-only bit is no obstacle
            handle.write(pristine + "# a job wrote here\n")
        ms, said = timed_ms(["bash", "-c", line], workdir, env)
        assert "restored" in said and victim.read_text() == pristine, said
        times["changed"].append(ms)
        times["python"].append(timed_ms(floor, workdir, env)[0])
    tracked = len(subprocess.run(
        ["git", "ls-files"], cwd=worktree, env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines())  # fmt: skip
    result = {
        "size": args.size,
        "tracked_files": tracked,
        "runs": args.runs,
        "machine": machine(),
        "load_average": load_average(),
        **{f"{name}_median_ms": round(statistics.median(v), 1) for name, v in times.items()},
        **{f"{name}_min_ms": round(min(v), 1) for name, v in times.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
