"""A failed job's exception reaches the user with where it failed and its cause chain.

Its traceback names the files the user wrote. submitit ships the task function to the job
with cloudpickle, which pickles a function of the app's script (or any function it cannot
import by name, such as a closure) by value; since cloudpickle 3.1 such a function's code says
`<dynamic-code>` where its file was, and the traceback Hydra 1.4 carries back says neither
where the task failed nor in which file. cloudpickle keeps the function's module `__file__` in
its globals: the job puts it back on the code before it runs.

Hydra 1.3 pickles the exception alone, which drops its traceback and cause chain: the job adds
them to it as a note, which Python 3.11+ prints after the message.
"""

from __future__ import annotations

import traceback
import types
from typing import Any, Set

from hydra.core.utils import JobReturn, JobStatus

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


def keep_job_traceback(ret: JobReturn) -> JobReturn:
    """`ret`, its failure carrying the job's traceback and cause chain as a note where Hydra
    does not carry them itself (1.3; 1.4's JobReturn has `_remote_traceback`)."""
    error = ret._return_value
    if ret.status != JobStatus.FAILED or not isinstance(error, BaseException):
        return ret
    if hasattr(ret, "_remote_traceback"):
        return ret
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    note = f"the job's traceback:\n{text.rstrip()}"
    notes = getattr(error, "__notes__", None)
    # add_note is 3.11+; on 3.10 the note is kept where 3.11 would put it, for callers to read
    vars(error)["__notes__"] = [*(notes if isinstance(notes, list) else []), note]
    return ret
