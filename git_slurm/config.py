"""git config keys of git-slurm (`slurm.*`) with their defaults.

All of them are read with one `git config --get-regexp` call (a command start-up costs more
than the reading); git itself parses a typed value (bool, int with k/m/g), only when it is set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from git_slurm.age import parse_age
from git_slurm.capture import DEFAULT_MAX_UNTRACKED
from git_slurm.errors import UsageError, git_reason
from git_slurm.gitcli import Git
from git_slurm.push import PUSH_TIMEOUT
from git_slurm.repo import Checkout
from git_slurm.worktrees import DEFAULT_DIR_NAME

DEFAULT_PREFIX = "slurm-job"
DEFAULT_LINKS = ("outputs", "multirun", ".submitit")
DEFAULT_GC_AGE = "7d"


class SlurmConfig:
    """The `slurm.*` settings of one repository, as git config resolves them for it."""

    def __init__(self, git: Git) -> None:
        self.git = git
        self.values: dict[str, list[str]] = {}
        rc, out, err = git.run("config", "-z", "--get-regexp", r"^slurm\.", check=False)
        if rc not in (0, 1):  # 1: none is set
            raise UsageError(f"cannot read git config: {git_reason(err)}")
        for item in out.split("\0"):
            if item:
                key, _, value = item.partition("\n")
                self.values.setdefault(key.lower(), []).append(value)

    def _all(self, key: str) -> list[str]:
        return self.values.get(key.lower(), [])

    def _last(self, key: str) -> Optional[str]:
        values = self._all(key)
        return values[-1] if values else None

    def _bool(self, key: str) -> Optional[bool]:
        """A boolean key as git reads it (`yes`, `on`, `1`, ...); None when unset (no git call)."""
        return None if self._last(key) is None else self.git.config_bool(key)

    def branch_prefix(self) -> str:
        return self._last("slurm.branchPrefix") or DEFAULT_PREFIX

    def link_paths(self) -> list[str]:
        return self._all("slurm.link") or list(DEFAULT_LINKS)

    def worktree_dir(self, checkout: Checkout) -> Path:
        """`slurm.worktreeDir` (relative to the checkout's root), else inside the common git
        dir."""
        value = self._last("slurm.worktreeDir")
        if value:
            return (checkout.toplevel / Path(value).expanduser()).resolve()
        return checkout.common_dir / DEFAULT_DIR_NAME

    def push_default(self) -> Optional[bool]:
        """`slurm.push`; None means: push when a remote exists."""
        return self._bool("slurm.push")

    def max_untracked_size(self) -> Optional[int]:
        """`slurm.maxUntrackedSize` in bytes (git's k/m/g suffixes); 0 or less: no limit."""
        if self._last("slurm.maxUntrackedSize") is None:
            return DEFAULT_MAX_UNTRACKED
        key = "slurm.maxUntrackedSize"
        rc, out, err = self.git.run("config", "--type=int", "--get", key, check=False)
        if rc != 0:
            raise UsageError(f"bad slurm.maxUntrackedSize: {git_reason(err)}")
        value = int(out.strip())
        return value if value > 0 else None

    def submodules(self) -> bool:
        """`slurm.submodules`: check submodules out in snapshot worktrees."""
        return self._bool("slurm.submodules") is True

    def push_timeout(self) -> float:
        """`slurm.pushTimeout` (`90s`, `2m`), in seconds; else 120."""
        value = self._last("slurm.pushTimeout")
        if value is None:
            return PUSH_TIMEOUT
        try:
            seconds = parse_age(value)
        except UsageError as exc:
            raise UsageError(f"bad slurm.pushTimeout: {exc}") from exc
        if seconds <= 0:
            raise UsageError(f"bad slurm.pushTimeout {value!r}: it must be longer than 0s")
        return seconds

    def gc_older_than(self, now: float) -> tuple[str, float]:
        """`slurm.gcOlderThan` (else 7d), as written and in seconds before `now`."""
        text = self._last("slurm.gcOlderThan") or DEFAULT_GC_AGE
        try:
            return text, parse_age(text, now)
        except UsageError as exc:
            raise UsageError(f"git config slurm.gcOlderThan: {exc}") from exc

    def reminders_enabled(self) -> bool:
        return self._bool("slurm.reminders") is not False
