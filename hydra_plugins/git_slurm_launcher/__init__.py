"""git-slurm's Hydra launcher: a drop-in for hydra-submitit-launcher whose jobs run a snapshot.

`hydra/launcher=submitit_local` and `submitit_slurm` keep every setting of
hydra-submitit-launcher 1.2.0; `hydra.launcher.snapshot.enabled=true` runs every job of a
launch from one `git slurm-snapshot` worktree, and `hydra.launcher.wait=false` returns as soon
as the jobs are queued.
"""
