"""The "model" the example app trains: edit VERSION while jobs are queued, and see that they
still run this one."""

VERSION = "v1"


def train(lr: float, seed: int) -> float:
    """A stand-in for training: a score that depends on the config."""
    return round(lr * (seed + 1), 3)
