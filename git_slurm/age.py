"""Ages such as `--older-than 7d` or `2.weeks.ago`, in seconds.

The short forms (`90s`, `30m`, `12h`, `7d`, `2w`, also `3 hours`, `10 min`) and their
combinations (`1d12h`, `1h30m`, `2 weeks 3 days`) are read here, because git's approxidate
reads `7d`, `30m` or `3 min` as something else entirely (a day of the month, a month, six
days). Every other form goes to git itself, never to a re-implementation of approxidate:
`git config --type=expiry-date` is the one git interface that parses approxidate *and*
rejects what it understands not at all (`git rev-parse --since=foo` silently means "now").
It still skips any word it does not know and reads the rest: `1 fortnight` is "the 1st of
this month", `1d12h` some day in the past year. So before git is asked, every word must be
one approxidate knows (`_GIT_WORDS`): an age git would read only in part is an error, never
whatever the rest happens to mean.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Optional

from git_slurm.errors import GitSlurmError, UsageError
from git_slurm.gitcli import run_git

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_UNIT = r"(?:s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|wks?|weeks?)"
_TERM = re.compile(rf"(\d+(?:\.\d+)?)\s*({_UNIT})(?![a-z])", re.IGNORECASE)
# one or more terms, each unit at most once (checked below): `1d12h`, `2 weeks, 3 days`
_SHORT = re.compile(rf"(?:\d+(?:\.\d+)?\s*{_UNIT}(?![a-z])[\s,]*)+", re.IGNORECASE)
# Every word approxidate (git's date.c) knows. Month and weekday names count by any prefix of
# three letters or more, as git matches them; anything else git would skip in silence.
_GIT_WORDS = frozenset(
    [
        "ago",
        "last",
        "now",
        "never",
        "all",
        "yesterday",
        "today",
        "noon",
        "midnight",
        "tea",
        "am",
        "pm",
        "utc",
        "gmt",
        "z",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "second",
        "seconds",
        "minute",
        "minutes",
        "hour",
        "hours",
        "day",
        "days",
        "week",
        "weeks",
        "month",
        "months",
        "year",
        "years",
    ]
)
_GIT_NAMES = tuple(
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ]
)
# numbers, dates and times (`2024-01-31`, `12:30:00`, `31/01/2024`), a zone such as `+0100`
_GIT_NUMBERS = re.compile(r"[+-]?\d+(?:[-/:]\d+)*|\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d)?")
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
    if _SHORT.fullmatch(stripped):
        return _short_seconds(text, stripped)
    if not stripped or _LIKE_SHORT.fullmatch(stripped):
        raise UsageError(f"unknown age {text!r}: the units are s, m, h, d and w (as in 7d)")
    unknown = _unknown_to_git(stripped)
    if unknown is not None:
        raise UsageError(
            f"unknown age {text!r}: git's date parser does not know {unknown!r}; "
            "use 30m, 12h, 7d, 2w, 1d12h or a git date like 2.weeks.ago"
        )
    reference = int(time.time() if now is None else now)
    timestamp = _approxidate(stripped, reference)
    if timestamp >= _EXPIRE_ALL:
        return 0.0  # "now", "all": everything is older than that
    if timestamp > reference:
        raise UsageError(f"age {text!r} lies in the future")
    return float(reference - timestamp)


def _short_seconds(text: str, stripped: str) -> float:
    """The seconds of one or more short terms (`1d12h`); a unit given twice is an error."""
    terms = [(float(n), unit[0].lower()) for n, unit in _TERM.findall(stripped)]
    units = [unit for _, unit in terms]
    if len(set(units)) != len(units):
        raise UsageError(f"unknown age {text!r}: each unit at most once (as in 1d12h)")
    return sum(number * UNITS[unit] for number, unit in terms)


def _unknown_to_git(text: str) -> Optional[str]:
    """The first word of `text` that git's approxidate would skip, if any."""
    for word in re.split(r"[\s.,]+", text.lower()):
        if not word or word in _GIT_WORDS or _GIT_NUMBERS.fullmatch(word):
            continue
        if len(word) >= 3 and any(name.startswith(word) for name in _GIT_NAMES):
            continue
        return word
    return None


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
