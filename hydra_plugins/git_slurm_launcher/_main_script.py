"""The launched script's task function, run in a job from the snapshot's copy of the script.

A function defined in `__main__` (the script the user ran) is pickled by value, with the
globals it uses as they were at launch: `__file__`, and every path derived from it, would point
into the live checkout. Instead a job imports the snapshot's copy of the script, under the name
`__mp_main__` (as multiprocessing's spawn re-imports the main script), and calls the function
of that name there. That only works when importing the script defines the function, which the
launch checks; otherwise the function travels by value, as before, and the launch says why.
"""

from __future__ import annotations

import ast
import runpy
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Optional, Sequence, Union

from hydra.types import TaskFunction

from git_slurm.launch_env import PathMap

MAIN_NAME = "__mp_main__"  # multiprocessing's name: `if __name__ == "__main__"` stays False


@dataclass(frozen=True)
class ScriptTask:
    """Pickled in place of a task function of `__main__`: where the job finds it again."""

    name: str
    path: Optional[str]  # the script in the worktree (`python train.py`)
    module: Optional[str]  # its module name (`python -m pkg.train`)
    depth: int = 1  # `__wrapped__` steps from the script's `name` to the task (hydra.main's)
    argv: tuple[str, ...] = ()  # the launch's `sys.argv`, which the script may read at import

    def __call__(self, cfg: Any) -> Any:
        return self.resolve()(cfg)

    def resolve(self) -> TaskFunction:
        """The function, from the script imported in this process (once)."""
        main = sys.modules.get(MAIN_NAME)
        if main is None or getattr(main, "__git_slurm_task__", None) != self:
            main = import_main(self.path, self.module, self.argv)
            main.__git_slurm_task__ = self  # type: ignore[attr-defined]
        task: TaskFunction = unwrapped(getattr(main, self.name), self.depth)
        return task


def unwrapped(function: Any, depth: int) -> Any:
    """`function` without its `depth` outer decorators (those that keep `__wrapped__`)."""
    for _ in range(depth):
        function = function.__wrapped__
    return function


def wrapping_depth(outer: Any, task: Any) -> Optional[int]:
    """How many `__wrapped__` steps lead from `outer` to `task`, if any do: hydra.main's
    wrapper is one, a decorator of the user's own under it (kept, as Hydra ran it) is not."""
    depth, seen = 0, set()
    while outer is not None and id(outer) not in seen:
        if outer is task:
            return depth
        seen.add(id(outer))
        outer, depth = getattr(outer, "__wrapped__", None), depth + 1
    return None


def import_main(
    path: Optional[str], module: Optional[str], argv: Sequence[str] = ()
) -> types.ModuleType:
    """Run the script as module `__mp_main__` and keep it in sys.modules. While it runs,
    `sys.argv` is the launch's (as multiprocessing's spawn does; runpy sets `argv[0]` to the
    snapshot's file): globals built from it get the values they had at launch."""
    job_argv = sys.argv
    sys.argv = [job_argv[0], *argv[1:]] if argv else job_argv
    try:
        if module is not None:
            namespace = runpy.run_module(module, run_name=MAIN_NAME, alter_sys=True)
        else:
            assert path is not None
            namespace = runpy.run_path(path, run_name=MAIN_NAME)
    finally:
        sys.argv = job_argv
    main = types.ModuleType(MAIN_NAME)
    main.__dict__.update(namespace)
    sys.modules[MAIN_NAME] = main
    return main


def resolve_task(task: Union[TaskFunction, ScriptTask]) -> TaskFunction:
    return task.resolve() if isinstance(task, ScriptTask) else task


def defines_at_top_level(source: str, name: str) -> bool:
    """Whether running `source` as a module defines function `name` whatever `__name__` is."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    return any(isinstance(node, functions) and node.name == name for node in tree.body)


def calls_at_import(source: str, names: Collection[str]) -> Optional[str]:
    """Which of `names` running `source` under a name other than `__main__` calls, if any: a
    script without an `if __name__ == "__main__":` guard would start Hydra again in the job."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    skipped = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    pending: list[ast.AST] = [n for n in tree.body if not _main_guard(n)]
    while pending:
        node = pending.pop()
        if isinstance(node, skipped):
            continue
        called = node.func if isinstance(node, ast.Call) else None
        if isinstance(called, ast.Name) and called.id in names:
            return called.id
        pending.extend(ast.iter_child_nodes(node))
    return None


def _main_guard(node: ast.AST) -> bool:
    """`if __name__ == "__main__":` (either way round): its body does not run on import."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    sides = [test.left, *test.comparators]
    names = any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
    main = any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)
    return names and main and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)


def script_task(task: Any, paths: PathMap) -> tuple[Optional[ScriptTask], Optional[str]]:
    """(What to pickle instead of `task`, or None to pickle it as it is; why not, if not)."""
    if getattr(task, "__module__", None) != "__main__":
        return None, None  # pickled by reference: the job imports its module from the worktree
    name = getattr(task, "__name__", "")
    main = sys.modules["__main__"]
    if getattr(task, "__qualname__", None) != name:
        return None, f"the task function {task.__qualname__} is not a module-level function"
    depth = wrapping_depth(getattr(main, name, None), task)
    if depth is None:
        return None, f"`{name}` in the script is not the task function"
    script = getattr(main, "__file__", None)
    if not isinstance(script, str):
        return None, "the script has no file"
    copy = paths.into_worktree(script)
    if copy is None:
        return None, f"{script} is not in the snapshot"
    source = Path(copy).read_text(encoding="utf-8")
    if not defines_at_top_level(source, name):
        return None, (
            f"the snapshot's {Path(script).name} does not define `{name}` at module level "
            "(only under `if __name__ == '__main__':`?), so importing it would not find it"
        )
    # every name of the script for the task or a wrapper of it (`main = hydra.main()(train)`)
    wrappers = [k for k, v in vars(main).items() if wrapping_depth(v, task) is not None]
    called = calls_at_import(source, wrappers)
    if called:
        return None, (
            f"the snapshot's {Path(script).name} calls `{called}` when it is imported (no "
            "`if __name__ == '__main__':` guard), so importing it would start Hydra again"
        )
    spec = getattr(main, "__spec__", None)
    module = spec.name if spec is not None and spec.name not in (None, "__main__") else None
    task_ref = ScriptTask(
        name=name,
        path=None if module else copy,
        module=module,
        depth=depth,
        argv=tuple(sys.argv),
    )
    return task_ref, None
