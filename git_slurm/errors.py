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


def git_reason(stderr: str) -> str:
    """What git said when it refused, on one line: from its first `fatal:`/`error:` line on,
    with the advice it gives (`git config --global --add safe.directory ...` after "dubious
    ownership"), without the prefixes and `hint:` lines ("" when it said nothing)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    start = next((n for n, ln in enumerate(lines) if ln.startswith(("fatal:", "error:"))), 0)
    said = ""
    for line in lines[start:]:
        if line.startswith("hint:"):
            continue
        line = line.removeprefix("fatal: ").removeprefix("error: ")
        # a sentence wrapped over lines goes on with a space, a new statement after "; "
        joined = said.endswith((":", ".")) or line[:1].islower()
        said += line if not said else (" " if joined else "; ") + line
    return said
