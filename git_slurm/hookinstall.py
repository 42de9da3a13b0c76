"""Installing and removing the `post-checkout` reminder hook in a repository.

The hook is the shim `hooks/post-checkout` with the interpreter that has git_slurm written into
it, so that it works without the venv on PATH and runs nothing from the repository. It goes to
the common git dir's `hooks/`, which every linked worktree shares. A foreign hook already there
is moved to `post-checkout.legacy` (the shim runs it first), and moved back on uninstall: what
was there before install is there, byte for byte, after uninstall.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import git_slurm
from git_slurm.errors import GitSlurmError, UsageError
from git_slurm.gitcli import run_git
from git_slurm.reminders import forget_cache
from git_slurm.repo import Checkout

HOOK_NAME = "post-checkout"
LEGACY_SUFFIX = ".legacy"
MARKER = b"git-slurm-hook"  # on the shim's second line; how our hook is told from another
PYTHON_SLOT = "@PYTHON@"
# What the shim runs with `python -E -c`: the current directory (the work tree) leaves the
# import path and the package's root joins it at the end, so the user's modules can shadow
# neither the stdlib nor git_slurm, and a git_slurm run from a source checkout is found too.
BOOT = (
    "import sys; sys.path[0:1] = []; sys.path.append(sys.argv.pop(1)); "
    "from git_slurm.cli.post_checkout import main; sys.exit(main())"
)
ROOT_SLOT = "@ROOT@"

# Where the shim's template is: beside the package (a source checkout or an editable
# install), or where a wheel's data files go.
PACKAGE_ROOT = Path(git_slurm.__file__).resolve().parent.parent
TEMPLATE_PLACES = (
    PACKAGE_ROOT / "hooks" / HOOK_NAME,
    Path(sys.prefix) / "share" / "git-slurm" / "hooks" / HOOK_NAME,
)


def install(checkout: Checkout, python: Optional[str] = None) -> str:
    """Install the reminder hook (chaining a foreign one); say what was done."""
    hook = hook_path(checkout)
    text = render(python or sys.executable)
    if is_ours(hook):
        if hook.read_bytes() == text:
            return f"git-slurm's post-checkout hook is already installed at {hook}"
        write_hook(hook, text)
        return f"updated git-slurm's post-checkout hook at {hook}"
    chained = move_aside(hook)
    try:
        write_hook(hook, text)
    except BaseException:
        if chained:  # the user's hook goes back to running as it did
            legacy_path(hook).rename(hook)
        raise
    kept = f"; your previous hook is kept as {hook.name}{LEGACY_SUFFIX} and runs first"
    return f"installed git-slurm's post-checkout hook at {hook}{kept if chained else ''}"


def move_aside(hook: Path) -> bool:
    """Move a foreign hook to `.legacy` for the shim to chain; False when there is none."""
    legacy = legacy_path(hook)
    if os.path.lexists(legacy):
        raise UsageError(
            f"{legacy} exists, and no git-slurm hook chains it: installing would overwrite or "
            "revive it; move it away first"
        )
    if not os.path.lexists(hook):
        return False
    hook.rename(legacy)  # a rename keeps content, mode, times and symlinks exactly
    return True


def uninstall(checkout: Checkout) -> str:
    """Remove the reminder hook and put back the one it chained; say what was done."""
    hook = common_hooks_dir(checkout) / HOOK_NAME
    if not is_ours(hook):
        return f"git-slurm's post-checkout hook is not installed at {hook}: nothing to do"
    forget_cache(checkout.common_dir)
    legacy = legacy_path(hook)
    if os.path.lexists(legacy):
        legacy.replace(hook)
        return f"removed git-slurm's post-checkout hook; restored your previous hook at {hook}"
    hook.unlink()
    return f"removed git-slurm's post-checkout hook from {hook}"


def common_hooks_dir(checkout: Checkout) -> Path:
    return checkout.common_dir / "hooks"


def hook_path(checkout: Checkout) -> Path:
    """Where to install (made when missing), after checking that git runs hooks from there."""
    default = common_hooks_dir(checkout)
    effective = effective_hooks_dir(checkout)
    if effective != default.resolve():
        raise UsageError(
            f"core.hooksPath sends git to {effective} for hooks, not to {default}: "
            f"add the reminder to the hook manager that owns that directory (with the "
            f"pre-commit framework: the git-slurm-reminders hook, stage post-checkout) or "
            f"unset core.hooksPath"
        )
    default.mkdir(exist_ok=True)
    return default / HOOK_NAME


def effective_hooks_dir(checkout: Checkout) -> Path:
    """The directory git runs hooks from, core.hooksPath included.

    Through `run_git`, not `Git`: the tool's own git calls set core.hooksPath=/dev/null, which
    would hide the user's setting.
    """
    _, out, _ = run_git(
        [f"--git-dir={checkout.git_dir}", "rev-parse", "--git-path", "hooks"],
        cwd=checkout.toplevel,
    )
    return (checkout.toplevel / out.strip()).resolve()


def legacy_path(hook: Path) -> Path:
    return hook.with_name(hook.name + LEGACY_SUFFIX)


def is_ours(hook: Path) -> bool:
    """A regular file with our marker (a symlink to a shim is somebody else's arrangement)."""
    if hook.is_symlink() or not hook.is_file():
        return False
    with hook.open("rb") as handle:
        return MARKER in handle.read(512)


def template() -> str:
    for place in TEMPLATE_PLACES:
        if place.is_file():
            return place.read_text(encoding="utf-8")
    raise GitSlurmError(f"the hook template is missing (looked in {TEMPLATE_PLACES[0]})")


def render(python: str) -> bytes:
    """The shim with the interpreter and the package's import root filled in."""
    text = template()
    for slot in (PYTHON_SLOT, ROOT_SLOT):
        if text.count(slot) != 1:
            raise GitSlurmError(f"the hook template has no single {slot}")
    text = text.replace(PYTHON_SLOT, shlex.quote(python))
    return text.replace(ROOT_SLOT, shlex.quote(str(PACKAGE_ROOT))).encode(
        "utf-8", "surrogateescape"
    )


def write_hook(hook: Path, text: bytes) -> None:
    """Write the hook whole and executable, then move it in: git may run it at any moment."""
    tmp = hook.with_name(f".{hook.name}.git-slurm.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755)  # the umask still applies
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text)
        tmp.replace(hook)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
