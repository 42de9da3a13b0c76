"""Man pages generated from one source: each command's plumbum switches plus its MANUAL.

`python -m git_slurm.manpages --write` regenerates man/*.1 and the shell completions in
completions/ (git_slurm.completion); the test suite checks that the committed files equal what
is generated (no drift between --help, the man page and the completion).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from git_slurm import __version__

MAN_DIR = Path(__file__).resolve().parent.parent / "man"
# each module defines an `APP` (plumbum app class) and a `MANUAL` (ManSource)
COMMAND_MODULES = ("git_slurm.cli.snapshot", "git_slurm.cli.gc")
DATE = "2026-11-29"  # bump with the content; a generated date would make every build differ


@dataclass(frozen=True)
class ManSource:
    """Everything of a page that is not in the command's switches."""

    name: str  # e.g. "git-slurm-snapshot"
    summary: str  # NAME line after the dash
    synopsis: str
    description: list[str]
    configuration: list[tuple[str, str]] = field(default_factory=list)
    exit_status: list[tuple[str, str]] = field(default_factory=list)
    examples: list[tuple[str, str]] = field(default_factory=list)
    see_also: str = "git-worktree(1), git-slurm-snapshot(1), git-slurm-gc(1)"


def _esc(text: str) -> str:
    """roff-safe text: backslashes and leading dots/quotes neutralised, dashes literal."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


@dataclass(frozen=True)
class Switch:
    """One switch of a command, as the man page and the shell completion show it."""

    names: list[str]  # without dashes, shortest first
    argname: Optional[str]  # None for a flag
    help: str
    repeatable: bool
    excludes: list[str]


def switches(app: Any, *, meta: bool = False) -> list[Switch]:
    """The command's switches; of the meta-switches only --help and --completions (or all
    of them with `meta`)."""
    inst = app(app.PROGNAME)
    result = []
    for info in inst._switches_by_func.values():
        shown = info.names in (["h", "help"], ["completions"])
        if not meta and info.group == "Meta-switches" and not shown:
            continue
        if inst._switches_by_name[info.names[0]] is not info:  # overridden (--completions)
            continue
        result.append(
            Switch(
                names=sorted(info.names, key=len),
                argname=info.argname if info.argtype is not None else None,
                help=info.help or "",
                repeatable=bool(info.list),
                excludes=list(info.excludes or []),
            )
        )
    return result


def dashes(name: str) -> str:
    """What a switch name is written with: `-n`, `--dry-run`."""
    return "-" if len(name) == 1 else "--"


def _switches(app: Any) -> list[tuple[str, str]]:
    items = []
    for sw in switches(app):
        rendered = ", ".join(f"\\fB{dashes(n)}{_esc(n)}\\fR" for n in sw.names)
        if sw.argname is not None:
            rendered += f" \\fI{_esc(sw.argname)}\\fR"
        items.append((rendered, _esc(sw.help)))
    return items


def render(app: Any, man: ManSource) -> str:
    """The roff text of one page."""
    title = _esc(man.name.upper())
    out = [
        f'.TH {title} 1 "{DATE}" "git-slurm {__version__}" "git-slurm manual"',
        ".SH NAME",
        f"{_esc(man.name)} \\- {_esc(man.summary)}",
        ".SH SYNOPSIS",
        ".nf",
        _esc(man.synopsis),
        ".fi",
        ".SH DESCRIPTION",
    ]
    for para in man.description:
        out += [".PP", _esc(para)]
    out.append(".SH OPTIONS")
    for head, text in _switches(app):
        out += [".TP", head, text]
    for title, pairs in (("CONFIGURATION", man.configuration), ("EXIT STATUS", man.exit_status)):
        if pairs:
            out.append(f".SH {title}")
            for head, text in pairs:
                out += [".TP", f"\\fB{_esc(head)}\\fR", _esc(text)]
    if man.examples:
        out.append(".SH EXAMPLES")
        for text, command in man.examples:
            out += [".PP", _esc(text), ".PP", ".nf", ".RS 4", _esc(command), ".RE", ".fi"]
    out += [".SH SEE ALSO", _esc(man.see_also), ""]
    return "\n".join(out)


def pages() -> dict[Path, str]:
    """man/<name>.1 -> its generated text, for every command."""
    result = {}
    for module in command_modules():
        result[MAN_DIR / f"{module.MANUAL.name}.1"] = render(module.APP, module.MANUAL)
    return result


def command_modules() -> list[Any]:
    import importlib

    return [importlib.import_module(name) for name in COMMAND_MODULES]


def generated() -> dict[Path, str]:
    """Every file generated from the commands' switches: man pages and shell completions."""
    from git_slurm.completion import files

    return {**pages(), **files()}


def main(argv: list[str]) -> int:
    import argparse  # here: every command's import reads ManSource, none needs argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="write man/*.1 and completions/")
    args = parser.parse_args(argv)
    made = generated()
    if args.write:
        for path, text in made.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return 0
    stale = [
        path
        for path, text in made.items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    for path in stale:
        print(f"stale: {path} (run `make man`)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
