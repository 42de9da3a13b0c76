"""Typed names, so that a branch name and an object id can't be mixed up."""

from __future__ import annotations


class Oid(str):
    """A full hexadecimal git object id."""


class BranchName(str):
    """A short branch name (without `refs/heads/`)."""

    @property
    def ref(self) -> str:
        return f"refs/heads/{self}"
