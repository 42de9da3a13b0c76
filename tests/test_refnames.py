"""git's ref-name rules in Python: the same verdict as the real `git check-ref-format`."""

from __future__ import annotations

import os
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from git_slurm.refnames import is_valid_refname

ODD = [
    "refs/heads/x", "x", "@", "refs/@", "refs/heads/@", "refs/a@{b", "refs/a@b{", "refs/a{@",
    "refs/heads/a..b", "refs/heads/a.b", "refs/heads/.a", "refs/heads/a.", "refs/heads/a/.b",
    "refs/heads/a./b", "refs/heads/a.lock", "refs/heads/a.lock/b", "refs/heads/a.lockx",
    "refs/heads/.lock", "refs/heads/lock", "refs//heads", "/refs/heads", "refs/heads/",
    "refs/heads/a b", "refs/heads/a\tb", "refs/heads/a\x01", "refs/heads/a\x7f", "refs/heads/a:b",
    "refs/heads/a?", "refs/heads/a[b", "refs/heads/a]b", "refs/heads/a\\b", "refs/heads/a^",
    "refs/heads/a~1", "refs/heads/a*", "refs/heads/*", "refs/heads/ünï", "refs/heads/\udcff",
    "refs/heads/a\udc80b", "refs/heads/-x", "refs/heads/a}", "refs/heads/@{", "refs/heads/a@",
    "refs/heads/a/b/c-20000101-000000", "refs/heads/a.b.c", "refs/heads/...", "refs/..",
    "refs/heads/a\u2028b", "refs/heads/a\x85b", "refs/heads/{", "refs/heads/a.lock.", "./a",
    "refs/heads/a,b", "refs/heads/a'b\"", "refs/heads/a#b$%&()+;<=>|!",
]  # fmt: skip
# the bytes that matter to the rules, a few ordinary ones, and a non-UTF-8 byte
ALPHABET = [*"a-_./@{}*~^:?[]\\ ,é", "\x01", "\x1f", "\x7f", "\udcff", ".lock", "@{"]


def git_says(name: str) -> bool:
    ran = subprocess.run(["git", "check-ref-format", os.fsencode(name)], capture_output=True)
    assert ran.returncode in (0, 1), ran.stderr
    return ran.returncode == 0


@pytest.mark.parametrize("name", ODD)
def test_odd_names_judged_as_git_judges_them(name: str) -> None:
    assert is_valid_refname(name) == git_says(name)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(ALPHABET), min_size=0, max_size=8))
def test_any_name_judged_as_git_judges_it(pieces: list[str]) -> None:
    name = "refs/heads/" + "".join(pieces)
    assert is_valid_refname(name) == git_says(name)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# (a name starting with `-` is an option to git check-ref-format, so no oracle for it)
@given(
    st.text(st.characters(blacklist_characters="\0"), max_size=12).filter(lambda t: t[:1] != "-")
)
def test_any_text_judged_as_git_judges_it(text: str) -> None:
    try:
        os.fsencode(text)
    except UnicodeEncodeError:  # a lone surrogate: no argv can carry it
        assert not is_valid_refname(text)
        return
    assert is_valid_refname(text) == git_says(text)


def test_a_name_no_process_can_carry_is_invalid() -> None:
    assert not is_valid_refname("refs/heads/a\0b")
    assert not is_valid_refname("refs/heads/\ud800")
