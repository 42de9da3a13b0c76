"""Fault injection for the crash tests, in the spirit of git's `GIT_TEST_*` knobs.

A test knob, not a feature: with `GIT_SLURM_TEST_FAULT=<step>:<SIGNAME>` in the environment
(e.g. `worktree:KILL`, `capture:INT`), the process sends itself that real signal when it
reaches `point(<step>)`. SIGKILL ends it on the spot, as the OOM killer or a node reboot
would; SIGINT goes through Python's own handler and surfaces as KeyboardInterrupt, as a
Ctrl-C would. The steps of a snapshot, in order: capture, commit, branch, push, reserved
(its worktree's directory made, still empty), worktree, links, record; of a hook install,
hook-move (before the user's hook is moved aside), of an uninstall, hook-remove (once our
hook is found). Without the variable a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "GIT_SLURM_TEST_FAULT"


def point(step: str) -> None:
    """Signal this process here when `GIT_SLURM_TEST_FAULT` names this step."""
    wanted = os.environ.get(ENV)
    if wanted is None:
        return
    name, _, signame = wanted.partition(":")
    if name == step:
        os.kill(os.getpid(), signal.Signals[f"SIG{signame}"])
