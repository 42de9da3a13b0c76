"""What every git-slurm command shares: one-line errors, exit codes, JSON output."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import traceback
from typing import Any, Optional

from plumbum import cli
from plumbum.cli.application import ShowCompletion, ShowHelp, ShowHelpAll, ShowVersion
from plumbum.cli.switches import SwitchError

from git_slurm import __version__
from git_slurm.errors import ExitCode, GitSlurmError, UsageError
from git_slurm.gitcli import paths_as_bytes


class _BadSwitch(Exception):
    """plumbum's SwitchError, carried past plumbum's own multi-line report."""


# plumbum signals -h/--version through SwitchError subclasses: those must reach plumbum
_META = (ShowHelp, ShowHelpAll, ShowVersion, ShowCompletion)


class GitSlurmApp(cli.Application):
    """A plumbum app whose usage errors are one `error:` line on stderr, as git's are."""

    VERSION = __version__
    ALLOW_ABBREV = False

    # plumbum's own --completions (bash, fish) completes the `git-slurm-*` executable; this one
    # prints the functions git's completion calls for `git slurm-* <TAB>` (git_slurm.completion)
    @cli.switch(
        ["--completions"],
        str,  # checked in _print_completion: plumbum's Set would word the refusal in 2 lines
        argname="SHELL",
        group="Meta-switches",
        help="print the completion of every git slurm-* command for git's bash or zsh "
        "completion and exit",
    )
    def completions(self, shell: str) -> None:
        """Handled by plumbum as --version is: it raises ShowCompletion, then calls this."""

    def _print_completion(self, shell: str) -> None:
        from git_slurm.completion import SHELLS, script

        if shell not in SHELLS:
            raise UsageError(f"--completions: no completion for {shell!r} (bash or zsh)")
        print(script(shell), end="")

    quiet = cli.Flag(
        ["-q", "--quiet"], help="say only warnings and errors (--json still prints its object)"
    )

    def say(self, line: str) -> None:
        """What the command did, on stdout, unless --quiet."""
        if not self.quiet:
            print(line)

    def note(self, text: str) -> None:
        """A remark on stderr in git's words: a `warning: ...` always, else `note: ...`, which
        --quiet silences. (git-slurm's hook and launcher speak inside git's and Hydra's output,
        so they say `git-slurm: ...` instead.)"""
        if text.startswith("warning: "):
            print(text, file=sys.stderr)
        elif not self.quiet:
            print(f"note: {text}", file=sys.stderr)

    def _parse_args(self, argv: list[str]) -> Any:
        try:
            return super()._parse_args(argv)
        except _META:
            raise
        except SwitchError as exc:
            raise _BadSwitch(str(exc)) from exc

    def _validate_args(self, swfuncs: Any, tailargs: Any) -> Any:
        try:
            return super()._validate_args(swfuncs, tailargs)
        except _META:
            raise
        except SwitchError as exc:
            raise _BadSwitch(str(exc)) from exc


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def os_error_line(exc: OSError) -> str:
    """An operating-system failure (a read-only repository, a full disk, a vanished directory)
    as git words one: `<path>: <reason>`; it is the machine's state, not a bug of ours."""
    reason = exc.strerror or str(exc)
    if exc.filename is None:
        return reason
    where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else exc.filename
    return f"{where}: {reason}"


def debug_traceback() -> None:
    """The traceback of the exception being handled, only with GIT_SLURM_DEBUG set."""
    if os.environ.get("GIT_SLURM_DEBUG"):
        traceback.print_exc()


# The shape of every --json object, its first key: raised whenever a key changes meaning, so
# that a script can refuse an output it does not understand instead of misreading it.
JSON_SCHEMA = 1


def print_json(data: dict[str, Any]) -> None:
    print(json.dumps({"schema": JSON_SCHEMA, **data}, indent=None, sort_keys=False))


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_app(app: type[GitSlurmApp], argv: Optional[list[str]] = None) -> int:
    """Run `app` and turn every failure into one line and an exit status; never a traceback."""
    argv = list(sys.argv if argv is None else argv)
    paths_as_bytes()
    # a launcher ending us (processes.kill_tree) sends SIGTERM: undo as on Ctrl-C, and end
    # the git calls we started, which live in sessions of their own
    with contextlib.suppress(ValueError):  # not the main thread (an in-process caller's)
        signal.signal(signal.SIGTERM, _interrupted)
    try:
        _, status = app.run(argv, exit=False)
        return int(status)
    except _BadSwitch as exc:
        fail(f"{str(exc).rstrip('.')} (see {app.PROGNAME} -h)")
        return ExitCode.USAGE
    except GitSlurmError as exc:
        fail(exc.message)
        return exc.code
    except KeyboardInterrupt:
        fail("interrupted")
        return ExitCode.INTERRUPTED
    except OSError as exc:  # what a module did not word itself still gets a plain line
        debug_traceback()
        fail(os_error_line(exc))
        return ExitCode.FAILURE
    except Exception as exc:  # a bug: still one line, the traceback only on request
        debug_traceback()
        fail(f"internal error: {type(exc).__name__}: {exc} (GIT_SLURM_DEBUG=1 shows more)")
        return ExitCode.FAILURE
