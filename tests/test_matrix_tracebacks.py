"""A task function that reaches its job by value (cloudpickle) keeps naming its own file: a
failed job's traceback, which Hydra 1.4 carries back to the user, says where it failed.
(Hydra 1.4's own check, test_failure_preserves_task_traceback, runs in CI's Hydra 1.4 leg.)"""

from __future__ import annotations

import traceback
from typing import Any, Callable

import cloudpickle  # type: ignore[import-untyped]
import pytest

from hydra_plugins.git_slurm_launcher._job_errors import restore_source_files


def helper() -> None:
    raise ValueError("helper failed")


def make_task() -> Callable[[Any], None]:
    def task(_: Any) -> None:
        def inner() -> None:
            try:
                helper()
            except ValueError as cause:
                raise RuntimeError("task failed") from cause

        inner()

    return task


class CallableTask:
    """A task object (as Hydra's test utilities pass): its function is an attribute."""

    def __init__(self, fn: Callable[[Any], None]) -> None:
        self.fn = fn

    def __call__(self, cfg: Any) -> None:
        self.fn(cfg)


def shipped(obj: Any) -> Any:
    """`obj` as a job gets it: pickled by value, as submitit ships a closure."""
    cloudpickle.register_pickle_by_value(__import__(__name__))
    try:
        return cloudpickle.loads(cloudpickle.dumps(obj))
    finally:
        cloudpickle.unregister_pickle_by_value(__import__(__name__))


def failing_files(task: Any) -> list[str]:
    with pytest.raises(RuntimeError) as info:
        task(None)
    error: BaseException = info.value
    files = [frame.filename for frame in traceback.extract_tb(error.__traceback__)]
    assert error.__cause__ is not None
    files += [frame.filename for frame in traceback.extract_tb(error.__cause__.__traceback__)]
    return files


@pytest.mark.parametrize("wrap", [lambda f: f, CallableTask], ids=["function", "object"])
def test_a_task_shipped_by_value_names_its_file_again(wrap: Any) -> None:
    task = shipped(wrap(make_task()))
    restore_source_files(task)
    files = failing_files(task)
    assert "<dynamic-code>" not in files
    assert files.count(__file__) >= 3  # task, inner, helper


def test_a_failed_job_reaches_the_user_with_its_cause_and_its_frames(
    hydra_sweep_runner: Any, tmpdir: Any
) -> None:
    """On Hydra 1.3 as on 1.4 (which carries the chain itself): what the launcher raises says
    where the task failed and what caused it."""

    def task_func(_: Any) -> None:
        try:
            raise ValueError("job cause")
        except ValueError as cause:
            raise RuntimeError("job failure") from cause

    sweep = hydra_sweep_runner(
        calling_file=None,
        calling_module="hydra.test_utils.a_module",
        task_function=task_func,
        config_path="configs",
        config_name="compose.yaml",
        overrides=["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=2"],
        temp_dir=tmpdir,
    )
    with pytest.raises(RuntimeError, match="job failure") as info, sweep:
        pass
    shown = "".join(traceback.TracebackException.from_exception(info.value).format())
    shown += "".join(getattr(info.value, "__notes__", []))  # 3.10 prints no notes
    assert "ValueError: job cause" in shown
    assert f'File "{__file__}"' in shown
    assert "in task_func" in shown
