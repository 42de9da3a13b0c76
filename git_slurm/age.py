"""Ages such as `--older-than 7d` or `2.weeks.ago`, in seconds.

The short forms (`90s`, `30m`, `12h`, `7d`, `2w`, also `3 hours`, `10 min`) are read here,
because git's approxidate reads `7d`, `30m` or `3 min` as something else entirely (a day of
the month, a month, six days). Every other form
goes to git itself, never to a re-implementation of approxidate: `git config --type=expiry-date`
is the one git interface that parses approxidate *and* rejects what it does not understand
(`git rev-parse --since=foo` silently means "now", which would make gc remove everything).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Optional

from git_slurm.errors import GitSlurmError, UsageError
from git_slurm.gitcli import run_git

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SHORT = re.compile(
    r"(\d+(?:\.\d+)?)\s*(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|wks?|weeks?)",
    re.IGNORECASE,
)
# A number with at most a short word: meant as a short form, but not one (`7`, `-3d`, `5y`,
# `7dd`). git would take these as some day of the month; refuse them instead.
_LIKE_SHORT = re.compile(r"[+-]?\d+(?:\.\d+)?\s*[a-z]{0,2}", re.IGNORECASE)
# `git config --type=expiry-date` answers "now" and "all" with the largest timestamp it has
_EXPIRE_ALL = 2**63 - 1
_PROBE_KEY = "gitslurm.age"
# The probe must not read the user's config: only the value given with -c counts.
_SEALED_CONFIG = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}


def parse_age(text: str, now: Optional[float] = None) -> float:
    """Seconds meant by `text`: `30m`, `12h`, `7d`, `2w`, `90s`, or an approxidate of git's
    (`2.weeks.ago`, `3.days.ago`, `yesterday`, `2024-01-31`) measured back from `now`.

    Raises UsageError for anything else, and for a date in the future.
    """
    stripped = text.strip()
    short = _SHORT.fullmatch(stripped)
    if short:
        return float(short.group(1)) * UNITS[short.group(2)[0].lower()]
    if not stripped or _LIKE_SHORT.fullmatch(stripped):
        raise UsageError(f"unknown age {text!r}: the units are s, m, h, d and w (as in 7d)")
    reference = int(time.time() if now is None else now)
    timestamp = _approxidate(stripped, reference)
    if timestamp >= _EXPIRE_ALL:
        return 0.0  # "now", "all": everything is older than that
    if timestamp > reference:
        raise UsageError(f"age {text!r} lies in the future")
    return float(reference - timestamp)


def _approxidate(text: str, reference: int) -> int:
    """git's reading of `text` as a timestamp, with `reference` as the current time."""
    # GIT_TEST_DATE_NOW is git's own hook for "the current time" (date.c get_time): it lets a
    # caller's `now` hold for relative forms too, so one gc run uses one clock.
    env = {**_SEALED_CONFIG, "GIT_TEST_DATE_NOW": str(reference)}
    args = ["-c", f"{_PROBE_KEY}={text}", "config", "--type=expiry-date", "--get", _PROBE_KEY]
    try:
        rc, out, _ = run_git(args, cwd=Path("/"), env=env, check=False, timeout=30)
    except GitSlurmError as exc:
        raise UsageError(f"cannot read age {text!r}: {exc}") from exc
    if rc != 0 or not out.strip().isdigit():
        raise UsageError(
            f"unknown age {text!r}: use 30m, 12h, 7d, 2w or a git date like 2.weeks.ago"
        )
    return int(out.strip())


def format_age(seconds: float) -> str:
    """A short human form of a duration: `45s`, `12m`, `5h`, `1d 4h`, `12d`."""
    if seconds < 60:
        return f"{max(int(seconds), 0)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h"
    days, rest = divmod(int(seconds), 86400)
    hours = rest // 3600
    return f"{days}d {hours}h" if hours and days < 7 else f"{days}d"
