"""`parse_age`: the short forms exactly, git's approxidate through git itself, and refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from gitrepo import Repo, run_tool

from git_slurm.age import format_age, parse_age
from git_slurm.errors import ExitCode, UsageError

NOW = 1_700_000_000.0  # a fixed clock: approxidate forms are measured back from it
DAY = 86400.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0m", 0.0),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("12h", 12 * 3600.0),
        ("7d", 7 * DAY),
        ("2w", 14 * DAY),
        ("1.5h", 5400.0),
        ("7D", 7 * DAY),
        (" 3 hours ", 3 * 3600.0),
        ("10 min", 600.0),  # git alone would read this as six days
        ("2 weeks", 14 * DAY),
    ],
)
def test_short_forms(text: str, seconds: float) -> None:
    assert parse_age(text, NOW) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2.weeks.ago", 14 * DAY),
        ("3.days.ago", 3 * DAY),
        ("yesterday", DAY),
        ("10.minutes.ago", 600.0),
        ("1.hour.ago", 3600.0),
        ("now", 0.0),
        ("2023-11-13 22:13:20 +0000", 1 * DAY),  # an absolute date, one day before NOW
    ],
)
def test_git_approxidate_forms_measured_from_now(text: str, seconds: float) -> None:
    assert parse_age(text, NOW) == seconds


def test_approxidate_uses_the_real_clock_without_now() -> None:
    assert parse_age("2.weeks.ago") == pytest.approx(14 * DAY, abs=2)


@pytest.mark.parametrize(
    "text", ["", "foo", "7", "-3d", "5y", "7dd", "3 mo", "tomorrow", "2099-01-01"]
)
def test_unknown_or_future_forms_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_age(text, NOW)
    assert caught.value.code == ExitCode.USAGE
    assert repr(text) in str(caught.value)


def test_user_config_cannot_change_the_reading() -> None:
    """The probe's -c value is the only config it reads (a global value is ignored)."""
    global_config = Path(os.environ["GIT_CONFIG_GLOBAL"])
    global_config.write_text(global_config.read_text() + "[gitslurm]\n\tage = 1.year.ago\n")
    assert parse_age("3.days.ago", NOW) == 3 * DAY


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (600, "10m"), (7200, "2h"), (DAY + 4 * 3600, "1d 4h"), (30 * DAY, "30d")],
)
def test_format_age(seconds: float, text: str) -> None:
    assert format_age(seconds) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1d12h", 1.5 * DAY),
        ("1h30m", 5400.0),
        ("1w2d", 9 * DAY),
        ("2d 4h", 2 * DAY + 4 * 3600.0),
        ("2 weeks, 3 days", 17 * DAY),
        ("1d12h30m15s", 1.5 * DAY + 1815.0),
    ],
)
def test_combined_short_forms_are_read_exactly(text: str, seconds: float) -> None:
    assert parse_age(text, NOW) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "1 fortnight",  # git reads "the 1st of this month" and skips the word it lacks
        "1.fortnight.ago",
        "3.days.agoo",
        "2.weeks.ago please",
        "last fortnight",
        "1d1d",  # a unit twice
        "12h 1h",
        "1d12",  # a number without its unit
    ],
)
def test_an_age_git_understands_only_in_part_is_an_error(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_age(text, NOW)
    assert caught.value.code == ExitCode.USAGE and repr(text) in str(caught.value)


def test_gc_reads_1d12h_as_a_day_and_a_half(repo: Repo) -> None:
    """Before: git read `1d12h` as some date (on the 1st of a month: one day ago)."""
    from test_gc import age, snapshot

    younger, older = snapshot(repo), snapshot(repo)
    age(younger, 1.4 * DAY)
    age(older, 1.6 * DAY)
    res = run_tool("slurm-gc", "--older-than", "1d12h", "--force", cwd=repo.path)
    assert res.returncode == 0, res.stderr
    assert younger.is_dir() and not older.exists()


def test_gc_with_a_partly_understood_age_changes_nothing(repo: Repo) -> None:
    """Before: `1 fortnight` read as "the 1st of this month": every finished worktree went,
    and with --branches every snapshot branch."""
    worktree = Path(repo.snapshot_json()["worktree"])
    res = run_tool(
        "slurm-gc", "--older-than", "1 fortnight", "--force", "--branches", cwd=repo.path
    )
    assert res.returncode == 2 and res.stderr.startswith("error: unknown age"), res.stderr
    assert len(res.stderr.splitlines()) == 1
    assert worktree.is_dir()
    assert len(repo.git("branch", "--list", "slurm-job-*").splitlines()) == 1
