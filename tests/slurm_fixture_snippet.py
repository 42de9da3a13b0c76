"""The ``slurm_cluster`` fixture, meant to move into tests/conftest.py.

Until then, test modules import it with
``from slurm_fixture_snippet import slurm_cluster  # noqa: F401``.

The ``slurm`` marker it goes with is already registered in pyproject.toml; if it ever moves,
register it again, e.g. in conftest.py::

    def pytest_configure(config):
        config.addinivalue_line(
            "markers",
            "slurm: needs a real SLURM cluster (fails in CI when none is reachable, skips on a laptop)",
        )
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from slurm_support import slurm_available

START_HINT = "start one with `make cluster` (runs bash tests/slurm/cluster.sh start as root)"


def slurm_required() -> bool:
    """In CI a missing cluster is a broken setup, not a reason to skip the SLURM tests."""
    return os.environ.get("CI") == "true" or os.environ.get("GIT_SLURM_REQUIRE_SLURM") == "1"


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[None]:
    """A reachable SLURM cluster: skip the test without one, or fail it when one is required."""
    available, reason = slurm_available()
    if not available:
        message = f"no SLURM cluster: {START_HINT} [{reason}]"
        if slurm_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    yield
