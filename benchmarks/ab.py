"""run.py's snapshot cases for several source trees of git_slurm, alternating, in one run.

    .venv/bin/python benchmarks/ab.py BEFORE_DIR AFTER_DIR... [--reps N] [--size full]

(a tree: e.g. `git archive COMMIT git_slurm | tar -x -C DIR`.) Each tree is put first on
PYTHONPATH (ahead of the editable install) for run.py's fresh / reuse / incremental
sequence; the order of the trees rotates every repetition, and
the start-up floor (`import plumbum.cli`) is measured between them. On a loaded machine only
the comparison made in one run means anything: the medians and each one minus the floor.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import cases
import refrepo
from common import run, seal_this_process, sealed_environment


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--size", choices=sorted(refrepo.SIZES), default="full")
    parser.add_argument("--root", default=str(refrepo.DEFAULT_ROOT))
    parser.add_argument(
        "--reuse-only", action="store_true", help="only the unchanged tree (short: more reps)"
    )
    args = parser.parse_args()
    root = Path(args.root)
    env = sealed_environment(root / "home")
    seal_this_process(env, root / "home")
    repo = refrepo.prepare(root, refrepo.SIZES[args.size], env)
    worktrees = root / args.size / "scratch" / "snapshots"
    run(["git", "config", "slurm.worktreeDir", str(worktrees)], repo, env)
    samples: dict[str, list[float]] = {}
    if args.reuse_only:  # the snapshot every run then reuses
        refrepo.remove_snapshots(repo, env)
        cases.snapshot(repo, env, "checkout")
    for rep in range(args.reps):
        shift = rep % len(args.trees)
        trees = args.trees[shift:] + args.trees[:shift]
        for tree in trees:
            tree_env = {**env, "PYTHONPATH": str(tree.resolve())}
            if args.reuse_only:
                reused = cases.snapshot(repo, tree_env, "reused")
                samples.setdefault(f"{tree} reuse", []).append(reused.seconds)
            else:
                ran = cases.snapshot_sequence(repo, tree_env)
                for case in ("fresh", "reuse", "incremental"):
                    samples.setdefault(f"{tree} {case}", []).append(getattr(ran, case).seconds)
            samples.setdefault("floor", []).append(cases.plumbum_floor(repo, env))
    refrepo.remove_snapshots(repo, env)  # every reuse made a branch: leave none behind
    floor = statistics.median(samples["floor"])
    print(f"floor (import plumbum.cli): {floor * 1000:.0f} ms")
    for name, seconds in samples.items():
        if name != "floor":
            med = statistics.median(seconds)
            print(f"{name}: {med * 1000:.0f} ms (floor + {(med - floor) * 1000:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
