"""What the post-checkout reminder adds to `git switch`, on a repository with 50 snapshots.

    .venv/bin/python benchmarks/hook_bench.py [--snapshots 50] [--runs 21] [--json]

Builds a throwaway repository in a sealed HOME, makes N snapshot worktrees with
`git slurm-snapshot` (half of them unused for 30 days, each of those with a finished local
job), installs the hook with `git slurm-snapshot --install-hooks`, and then times, in this one
process and interleaved so that the machine's mood hits all alike:

  nohook  `git switch` between two branches with hooks off (-c core.hooksPath=/dev/null)
  hook    the same `git switch` with the hook
  alone   the installed hook run by itself with git's three arguments
  imports Python starting and importing the hook's modules, nothing else (the floor)

with the reminder cache fresh (the steady state: the hook starts no refresh), then `cold`: the
hook alone with the cache deleted before each run, so that it also starts the detached refresh
(which is waited for between runs, outside the timing). The budget is 150 ms for the hook.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from git_slurm import hookinstall, reminders
from git_slurm.records import JobRef, add_jobs, snapshot_worktrees, write_record

BUDGET_MS = 150.0
DAY = 86400.0


def sealed_environment(home: Path) -> dict[str, str]:
    """No system or global git config of this machine, the venv's scripts first on PATH."""
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Bench\n\temail = bench@example.com\n[init]\n\tdefaultBranch = main\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
    )
    return env


def run(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr}")
    return done.stdout


def build(repo: Path, snapshots: int) -> None:
    """A repository with `snapshots` worktrees, half of them stale with a finished job each."""
    repo.mkdir()
    run(["git", "init", "-q"], repo)
    (repo / "model.py").write_text("VERSION = 0\n")
    (repo / ".gitignore").write_text("outputs/\nmultirun/\n.submitit/\n")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "initial"], repo)
    run(["git", "branch", "other"], repo)
    for n in range(snapshots):
        (repo / "model.py").write_text(f"VERSION = {n + 1}\n")
        run(["git", "slurm-snapshot", "--no-push", "--json"], repo)
    run(["git", "checkout", "-q", "--", "model.py"], repo)
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    for admin, old in snapshot_worktrees(repo / ".git")[: snapshots // 2]:
        record = add_jobs(Path(old.worktree), [JobRef(id=str(finished.pid), kind="local")])
        record.last_used = record.created = time.time() - 30 * DAY
        write_record(admin, record)
    run(["git", "slurm-snapshot", "--install-hooks"], repo)


CPU: dict[str, list[float]] = {}  # CPU time (user + system) of the same runs


def timed(argv: list[str], cwd: Path, name: str) -> float:
    """Wall-clock ms of one run; its CPU ms go to CPU[name]: on a busy machine the wall
    clock also counts waiting for a core, CPU time only what the run itself costs."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, capture_output=True, check=True)
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    CPU.setdefault(name, []).append(cpu)
    return wall


def wait_for_refresh(common_dir: Path) -> None:
    with (common_dir / reminders.REFRESH_LOCK_NAME).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)


def measure(repo: Path, runs: int) -> dict[str, list[float]]:
    common = repo / ".git"
    hook = str(common / "hooks" / "post-checkout")
    head = run(["git", "rev-parse", "HEAD"], repo).strip()
    reminders.refresh_cache(common, time.time() - 7 * DAY)  # the steady state: a fresh cache
    times: dict[str, list[float]] = {
        "nohook": [],
        "hook": [],
        "alone": [],
        "imports": [],
        "cold": [],
    }
    boot = "import sys; sys.path[0:1] = []; sys.path.append(sys.argv.pop(1)); "
    only_imports = [sys.executable, "-E", "-c", boot + "import git_slurm.cli.post_checkout"]
    only_imports.append(str(hookinstall.PACKAGE_ROOT))
    for _ in range(runs):  # both switches really move HEAD: main -> other -> main
        nohook = ["git", "-c", "core.hooksPath=/dev/null", "switch", "-q", "other"]
        times["nohook"].append(timed(nohook, repo, "nohook"))
        times["hook"].append(timed(["git", "switch", "-q", "main"], repo, "hook"))
        times["alone"].append(timed([hook, head, head, "1"], repo, "alone"))
        times["imports"].append(timed(only_imports, repo.parent, "imports"))
    for _ in range(max(3, runs // 4)):
        (common / reminders.CACHE_NAME).unlink(missing_ok=True)
        times["cold"].append(timed([hook, head, head, "1"], repo, "cold"))
        wait_for_refresh(common)
    return times


def report(times: dict[str, list[float]], snapshots: int, said: str) -> dict[str, object]:
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "snapshots": snapshots,
        "runs": len(times["hook"]),
        "median_ms": {name: round(value, 1) for name, value in medians.items()},
        "median_cpu_ms": {name: round(statistics.median(v), 1) for name, v in CPU.items()},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "hook_adds_ms": round(medians["hook"] - medians["nohook"], 1),
        "budget_ms": BUDGET_MS,
        "within_budget": max(medians["hook"] - medians["nohook"], medians["cold"]) < BUDGET_MS,
        "reminder": said.splitlines(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=50)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="git-slurm-hook-bench-") as tmp:
        sealed = sealed_environment(Path(tmp))
        os.environ.clear()
        os.environ.update(sealed)
        repo = Path(tmp) / "repo"
        build(repo, args.snapshots)
        times = measure(repo, args.runs)
        head = run(["git", "rev-parse", "HEAD"], repo).strip()
        said = run([str(repo / ".git" / "hooks" / "post-checkout"), head, head, "1"], repo)
        result = report(times, args.snapshots, said)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>14}: {value}")
    return 0 if result["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
