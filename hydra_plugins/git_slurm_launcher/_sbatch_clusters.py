"""Which cluster sbatch submitted to: `sbatch -M X` (from `additional_parameters: {clusters: X}`,
or SLURM_CLUSTERS, which overrides the script's own line) answers "Submitted batch job N on
cluster X", and submitit keeps only N. gc must ask cluster X about job N (on the default cluster
N is nobody's, or another user's), so the launch records the cluster sbatch named.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Iterator, List, Optional

PARSER = "_get_job_id_from_submission_command"  # submitit's, for every sbatch answer
SAID = re.compile(r"\bjob [0-9]+ on cluster (?P<cluster>\S+)")


def cluster_said(output: Any) -> Optional[str]:
    """The cluster named in sbatch's answer, None when it names none (the default cluster)."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else str(output)
    found = SAID.search(text)
    return found.group("cluster") if found else None


@contextlib.contextmanager
def sbatch_clusters() -> Iterator[List[Optional[str]]]:
    """While the block submits: the cluster each sbatch answer named, in order.

    submitit parses every sbatch answer with SlurmExecutor's static
    `_get_job_id_from_submission_command`, also for the executor copy it makes for an array,
    so that is where the answer is read; the launch is single-threaded, and the method is put
    back when the block ends. A submitit without it records what SLURM_CLUSTERS says, as before.
    """
    from submitit.slurm import slurm

    executor = slurm.SlurmExecutor
    original = executor.__dict__.get(PARSER)
    said: List[Optional[str]] = []
    if not isinstance(original, staticmethod):
        yield said
        return
    parse = original.__func__

    def parse_and_keep(output: Any) -> str:
        job_id: str = parse(output)
        said.append(cluster_said(output))
        return job_id

    setattr(executor, PARSER, staticmethod(parse_and_keep))
    try:
        yield said
    finally:
        setattr(executor, PARSER, original)
