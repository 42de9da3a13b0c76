"""What every job of a launch shares, pickled once for the whole array, not once per job.

hydra-submitit-launcher hands submitit the launcher itself as each job's function, with a deep
copy of Hydra's singleton state (ConfigStore, plugins) as an argument, so every job pickles the
launcher, its configs and that state again: most of the launcher's own time for a big array.
Here the launcher and the state are pickled once into a payload file next to submitit's job
folders, and each job's pickle holds only that file's path, its overrides, num and id.
"""

from __future__ import annotations

import os
import pickle
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Tuple

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn

# payloads this process has loaded: a job unpickles its launch's payload once
_LOADED: Dict[str, Tuple[Any, Dict[type, Singleton]]] = {}


@dataclass(frozen=True)
class SharedPayloadJob:
    """The function submitit runs for each job: the launcher of the payload, with the job's
    own arguments and the shared singleton state."""

    payload: str  # absolute path of the pickled (launcher, singleton state)

    def __call__(
        self, sweep_overrides: List[str], job_dir_key: str, job_num: int, job_id: str
    ) -> JobReturn:
        runner, state = self.load()
        result: JobReturn = runner(sweep_overrides, job_dir_key, job_num, job_id, state)
        return result

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Resubmit the job at its current state with the same arguments (as upstream)."""
        # lazy import to ensure plugin discovery remains fast
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)

    def load(self) -> Tuple[Any, Dict[type, Singleton]]:
        if self.payload not in _LOADED:
            with open(self.payload, "rb") as stream:  # cloudpickle's output is a plain pickle
                _LOADED[self.payload] = pickle.load(stream)  # noqa: S301  # our own file
        return _LOADED[self.payload]


def write_payload(folder: Path, runner: Any) -> SharedPayloadJob:
    """Pickle `runner` and Hydra's singleton state once, atomically, into `folder`."""
    # submitit's own pickler (cloudpickle): a task function may have to travel by value
    from submitit.core.utils import cloudpickle_dump

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"launch-{uuid.uuid4().hex}.pkl"
    partial = path.with_name(path.name + ".partial")
    cloudpickle_dump((runner, Singleton.get_state()), partial)
    os.replace(partial, path)
    return SharedPayloadJob(payload=str(path))
