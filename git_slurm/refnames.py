"""git's rules for a ref name (`git check-ref-format NAME`, no options), checked in Python.

A port of refs.c `check_refname_format` / `check_refname_component`: the same verdict as the
git process, without its start (more than its work on every snapshot). The names are checked
as the bytes git would see (`os.fsencode`, so a non-UTF-8 name from argv is judged as typed).
"""

from __future__ import annotations

import os

# refs.c refname_disposition: 4 = never in a ref name (control characters, DEL, space and
# `:?[\^~`), 5 = `*` (only in a refspec pattern, which a branch name never is)
_FORBIDDEN = frozenset([*range(0x20), 0x7F, *b" :?[\\^~*"])
_LOCK_SUFFIX = b".lock"


def _component_ok(part: bytes) -> bool:
    """One `/`-separated part: not empty, no `..` or `@{`, no forbidden byte, not starting
    with `.`, not ending with `.lock`."""
    if not part or part.startswith(b".") or part.endswith(_LOCK_SUFFIX):
        return False
    if b".." in part or b"@{" in part:
        return False
    return not _FORBIDDEN.intersection(part)


def is_valid_refname(name: str) -> bool:
    """What `git check-ref-format NAME` says: at least two parts, each good, not ending in
    `.`, not `@`. A NUL, or a character no file name can hold, can reach no git process at
    all: never valid."""
    try:
        raw = os.fsencode(name)
    except UnicodeEncodeError:
        return False
    if b"\0" in raw or raw == b"@" or raw.endswith(b"."):
        return False
    parts = raw.split(b"/")
    return len(parts) >= 2 and all(_component_ok(part) for part in parts)
