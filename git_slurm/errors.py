"""The one error type the commands turn into a one-line `error: ...` and an exit status."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Exit statuses of every git-slurm command."""

    OK = 0
    FAILURE = 1  # something went wrong while doing the work (git, disk, push, ...)
    USAGE = 2  # bad input: options, paths, names
    NOT_A_REPOSITORY = 3  # not inside a work tree, or a bare repository
    INTERRUPTED = 130


class GitSlurmError(Exception):
    """A failure the user should see as one line, never as a traceback."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILURE) -> None:
        super().__init__(message)
        self.code = code

    @property
    def message(self) -> str:
        return str(self)


class UsageError(GitSlurmError):
    """Bad input: a name, path or option the user gave."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.USAGE)


def last_line(text: str) -> str:
    """The last non-blank line of a command's output, stripped: where git and SLURM say why
    they failed ("" when there is none)."""
    return next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")
