"""A test-only Hydra sweeper: see editing_sweeper.py."""
