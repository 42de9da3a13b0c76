"""`hydra/sweeper=editing`, for the launcher's tests (tests/test_launcher_early.py): Hydra's
basic sweeper that, once Hydra has set the launcher up and before anything is launched,
does what the test asks: edit the checkout, say it got there and wait for a file, or fail.

On the test's PYTHONPATH only (a namespace-package part of `hydra_plugins`), never installed.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore

DEADLINE_S = 120.0


@dataclass
class EditingSweeperConf:
    _target_: str = "hydra_plugins.git_slurm_test_sweeper.editing_sweeper.EditingSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None
    # a JSON file {path relative to the launch dir: new text}, written before the sweep
    edits: Optional[str] = None
    # a directory: the sweeper writes `sweeping` there, then waits for `release` in it
    hold: Optional[str] = None
    # raise before launching anything, as a sweeper whose search space is bad would
    fail: bool = False


ConfigStore.instance().store(
    group="hydra/sweeper", name="editing", node=EditingSweeperConf, provider="git-slurm tests"
)


class EditingSweeper(BasicSweeper):
    def __init__(
        self,
        max_batch_size: Optional[int],
        params: Optional[Dict[str, str]] = None,
        edits: Optional[str] = None,
        hold: Optional[str] = None,
        fail: bool = False,
    ) -> None:
        super().__init__(max_batch_size, params)
        self.edits, self.hold, self.fail = edits, hold, fail

    def sweep(self, arguments: list[str]) -> Any:
        if self.edits:
            for rel, text in json.loads(Path(self.edits).read_text(encoding="utf-8")).items():
                Path(rel).write_text(text, encoding="utf-8")
        if self.hold:
            Path(self.hold, "sweeping").write_text("set up, nothing launched\n")
            deadline = time.monotonic() + DEADLINE_S
            while not Path(self.hold, "release").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        if self.fail:
            raise RuntimeError("the editing sweeper fails, as the test asked")
        return super().sweep(arguments)
