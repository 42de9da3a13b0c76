"""Where a Hydra multirun launch spends its time, from inside it, without touching product code.

slurm_launch.py copies this file into the site-packages of each of its venvs, with a `.pth` line
that imports it at interpreter start-up. It does nothing unless GS_BENCH_MARKS_FD names a file
descriptor (and it removes that variable, so sbatch and git started by the launch never see it).
Then it wraps, as their modules are imported (so it costs no import of its own):

- Hydra's sweeper's `sweep` (the sweeper starts) and its launcher's `launch`;
- Hydra's ConfigLoaderImpl.load_sweep_config (composing one job's config; in the sweeper to check
  the batch, in the launcher for each job);
- git_slurm.launch.take_launch_snapshot (the snapshot, when the launcher takes one), or, where
  the launcher starts it at setup, PendingSnapshot.result (what of it the launch waits for) and
  PendingSnapshot.wait_captured (setup waiting until the tree is recorded);
- submitit's DelayedSubmission.dump (pickling one job) and CommandFunction.__call__ (sbatch);
- submitit's Executor.map_array: when it returns, every job has been accepted by sbatch, and one
  JSON line with every mark is written to the descriptor. The benchmark ends the launch then.

Times are time.time() (the benchmark's clock for the command's start too); sums are seconds;
CPU has the CPU seconds spent by each mark (user + system, with reaped children such as git and
sbatch), which a loaded machine does not inflate as it does wall time.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional

MARKS: Dict[str, float] = {"loaded": time.time()}
CPU: Dict[str, float] = {}  # CPU seconds used by then: this process and the children it reaped
SUMS: Dict[str, float] = {}
COUNTS: Dict[str, int] = {}
FD: Optional[int] = None


def mark(name: str) -> None:
    if name not in MARKS:
        MARKS[name] = time.time()
        times = os.times()
        CPU[name] = times.user + times.system + times.children_user + times.children_system


def timed_sum(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.time()
        try:
            return fn(*args, **kwargs)
        finally:
            phase = "sweeper" if "launch" not in MARKS else "launcher"
            key = f"{name}.{phase}"
            SUMS[key] = SUMS.get(key, 0.0) + time.time() - started
            COUNTS[key] = COUNTS.get(key, 0) + 1

    return wrapper


def remember_reuse(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The snapshot's `reused` flag, so that the benchmark can check which path it took."""

    @functools.wraps(fn)
    def take(*args: Any, **kwargs: Any) -> Any:
        snapshot = fn(*args, **kwargs)
        MARKS["reused"] = float(bool(getattr(snapshot, "reused", False)))
        return snapshot

    return take


def wrap_instantiate_sweeper(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The sweeper Hydra makes (and has set up), its `sweep` and its launcher's `launch` timed.

    Hydra loads its core plugins with their loaders directly, past sys.meta_path, so the
    sweeper is caught where it is made rather than where it is defined."""

    @functools.wraps(fn)
    def instantiate(*args: Any, **kwargs: Any) -> Any:
        sweeper = fn(*args, **kwargs)
        sweep = sweeper.sweep

        def timed_sweep(*a: Any, **k: Any) -> Any:
            mark("sweep")
            launch = sweeper.launcher.launch

            def timed_launch(*a: Any, **k: Any) -> Any:
                mark("launch")
                return launch(*a, **k)

            sweeper.launcher.launch = timed_launch
            return sweep(*a, **k)

        sweeper.sweep = timed_sweep
        return sweeper

    return instantiate


def wrap_map_array(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def map_array(*args: Any, **kwargs: Any) -> Any:
        jobs = fn(*args, **kwargs)
        mark("queued")
        report([job.job_id for job in jobs])
        return jobs

    return map_array


def report(ids: List[str]) -> None:
    global FD
    if FD is None:
        return
    got = {"marks": MARKS, "cpu": CPU, "sums": SUMS, "counts": COUNTS, "ids": ids}
    line = json.dumps(got) + "\n"
    os.write(FD, line.encode())
    os.close(FD)
    FD = None


def patch(name: str, module: Any) -> None:
    """Wrap what module `name` (one of PATCHED) defines."""
    if name == "hydra.core.plugins":
        plugins = module.Plugins
        plugins.instantiate_sweeper = wrap_instantiate_sweeper(plugins.instantiate_sweeper)
    elif name == "hydra._internal.config_loader_impl":
        loader = module.ConfigLoaderImpl
        loader.load_sweep_config = timed_sum("compose", loader.load_sweep_config)
    elif name == "git_slurm.launch":
        take = remember_reuse(module.take_launch_snapshot)
        module.take_launch_snapshot = timed_sum("snapshot", take)
        pending = getattr(module, "PendingSnapshot", None)  # code that snapshots from setup
        if pending is not None:
            pending.result = timed_sum("snapshot", remember_reuse(pending.result))
            pending.wait_captured = timed_sum("capture", pending.wait_captured)
    elif name == "submitit.core.utils":
        module.DelayedSubmission.dump = timed_sum("pickle", module.DelayedSubmission.dump)
        module.CommandFunction.__call__ = timed_sum("sbatch", module.CommandFunction.__call__)
    elif name == "submitit.core.core":
        module.Executor.map_array = wrap_map_array(module.Executor.map_array)


PATCHED = {
    "hydra.core.plugins",
    "hydra._internal.config_loader_impl",
    "git_slurm.launch",
    "submitit.core.utils",
    "submitit.core.core",
}


class Patcher(importlib.abc.MetaPathFinder):
    """Finds nothing itself: lets the usual finders load a module of PATCHED, then patches it."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in PATCHED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader: Any = spec.loader
        original = loader.exec_module

        def exec_module(module: Any) -> None:
            original(module)
            patch(name, module)

        loader.exec_module = exec_module
        return spec


def install() -> None:
    global FD
    fd = os.environ.pop("GS_BENCH_MARKS_FD", None)
    if fd is None:
        return
    FD = int(fd)
    sys.meta_path.insert(0, Patcher())


install()
