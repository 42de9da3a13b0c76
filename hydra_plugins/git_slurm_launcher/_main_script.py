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
import inspect
import runpy
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from hydra.types import TaskFunction

from git_slurm.launch_env import PathMap

MAIN_NAME = "__mp_main__"  # multiprocessing's name: `if __name__ == "__main__"` stays False


@dataclass(frozen=True)
class ScriptTask:
    """Pickled in place of a task function of `__main__`: where the job finds it again."""

    name: str
    path: Optional[str]  # the script in the worktree (`python train.py`)
    module: Optional[str]  # its module name (`python -m pkg.train`)

    def __call__(self, cfg: Any) -> Any:
        return self.resolve()(cfg)

    def resolve(self) -> TaskFunction:
        """The function, from the script imported in this process (once)."""
        main = sys.modules.get(MAIN_NAME)
        if main is None or getattr(main, "__git_slurm_task__", None) != self:
            main = import_main(self.path, self.module)
            main.__git_slurm_task__ = self  # type: ignore[attr-defined]
        found = inspect.unwrap(getattr(main, self.name))  # hydra.main uses functools.wraps
        task: TaskFunction = found
        return task


def import_main(path: Optional[str], module: Optional[str]) -> types.ModuleType:
    """Run the script as module `__mp_main__` and keep it in sys.modules."""
    if module is not None:
        namespace = runpy.run_module(module, run_name=MAIN_NAME, alter_sys=True)
    else:
        assert path is not None
        namespace = runpy.run_path(path, run_name=MAIN_NAME)
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


def script_task(task: Any, paths: PathMap) -> tuple[Optional[ScriptTask], Optional[str]]:
    """(What to pickle instead of `task`, or None to pickle it as it is; why not, if not)."""
    if getattr(task, "__module__", None) != "__main__":
        return None, None  # pickled by reference: the job imports its module from the worktree
    name = getattr(task, "__name__", "")
    main = sys.modules["__main__"]
    if getattr(task, "__qualname__", None) != name:
        return None, f"the task function {task.__qualname__} is not a module-level function"
    if inspect.unwrap(getattr(main, name, None)) is not task:  # type: ignore[arg-type]
        return None, f"`{name}` in the script is not the task function"
    script = getattr(main, "__file__", None)
    if not isinstance(script, str):
        return None, "the script has no file"
    copy = paths.into_worktree(script)
    if copy is None:
        return None, f"{script} is not in the snapshot"
    if not defines_at_top_level(Path(copy).read_text(encoding="utf-8"), name):
        return None, (
            f"the snapshot's {Path(script).name} does not define `{name}` at module level "
            "(only under `if __name__ == '__main__':`?), so importing it would not find it"
        )
    spec = getattr(main, "__spec__", None)
    module = spec.name if spec is not None and spec.name not in (None, "__main__") else None
    return ScriptTask(name=name, path=None if module else copy, module=module), None
