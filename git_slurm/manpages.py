"""Man pages generated from one source: each command's plumbum switches plus its MANUAL.

`python -m git_slurm.manpages --write` regenerates man/*.1; the test suite checks that the
committed pages equal what this module generates (no drift between --help and the man page).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def _switches(app: Any) -> list[tuple[str, str]]:
    inst = app(app.PROGNAME)
    items = []
    for info in inst._switches_by_func.values():
        if info.group == "Meta-switches" and info.names != ["h", "help"]:
            continue
        names = sorted(info.names, key=len)
        rendered = ", ".join(f"\\fB{'-' if len(n) == 1 else '--'}{_esc(n)}\\fR" for n in names)
        if info.argtype is not None:
            rendered += f" \\fI{_esc(info.argname)}\\fR"
        items.append((rendered, _esc(info.help or "")))
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
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        result[MAN_DIR / f"{module.MANUAL.name}.1"] = render(module.APP, module.MANUAL)
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="write man/*.1")
    args = parser.parse_args(argv)
    generated = pages()
    if args.write:
        for path, text in generated.items():
            path.write_text(text, encoding="utf-8")
        return 0
    stale = [
        path
        for path, text in generated.items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    for path in stale:
        print(f"stale: {path} (run `make man`)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
