"""A job's traceback names the files the user wrote, not cloudpickle's `<dynamic-code>`.

submitit ships the task function to the job with cloudpickle, which pickles a function of the
app's script (or any function it cannot import by name, such as a closure) by value; since
cloudpickle 3.1 such a function's code says `<dynamic-code>` where its file was. A failed job's
traceback, which Hydra 1.4 carries back to the user with its cause chain, then says neither
where the task failed nor in which file. cloudpickle keeps the function's module `__file__` in
its globals: put it back on the code before the job runs.
"""

from __future__ import annotations

import types
from typing import Any, Set

DYNAMIC = "<dynamic-code>"  # what cloudpickle puts in co_filename


def restore_source_files(task: Any) -> None:
    """Give every by-value function reachable from `task` (itself or, for a callable object,
    its `__call__` and attributes; their closures; the functions of their module they refer
    to) its file back."""
    seen: Set[int] = set()
    pending = [task]
    if not isinstance(task, (types.FunctionType, types.MethodType)):
        pending.append(vars(type(task)).get("__call__"))
        pending.extend(getattr(task, "__dict__", {}).values())
    while pending:
        obj = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, types.MethodType):
            pending.append(obj.__func__)
        elif isinstance(obj, types.FunctionType):
            if obj.__code__.co_filename != DYNAMIC:
                continue  # pickled by reference: its code is the module's own
            source = obj.__globals__.get("__file__")
            if isinstance(source, str):
                obj.__code__ = _with_file(obj.__code__, source)
            pending.extend(cell.cell_contents for cell in obj.__closure__ or () if _full(cell))
            pending.extend(obj.__globals__.values())


def _with_file(code: types.CodeType, source: str) -> types.CodeType:
    """`code`, and the code of the functions and classes defined in it, naming `source`."""
    consts = tuple(
        _with_file(c, source) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return code.replace(co_filename=source, co_consts=consts)


def _full(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True
