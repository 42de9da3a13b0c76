"""What a test needs from the machine, and what happens when it is missing."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(message: str) -> NoReturn:
    """What a test needs is missing: a reason to skip on a developer's machine, a broken set-up
    in CI, where no test may skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
