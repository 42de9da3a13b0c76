"""git-slurm: every SLURM job runs exactly the code that was there when it was launched."""

__version__ = "0.1.0"
