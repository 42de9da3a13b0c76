"""The suite's own environment: what a test's processes inherit does not depend on how the
suite was started (in the foreground, in the background, under a CI runner)."""

from __future__ import annotations

import subprocess
import sys


def test_a_child_of_a_test_hears_ctrl_c() -> None:
    """Started from a shell without job control (`make test &`), the suite inherits SIGINT
    ignored; the tests that send a real Ctrl-C need their children to take it."""
    probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout == "True\n", done.stderr
