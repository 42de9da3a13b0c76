"""Each reuse rewrites its worktree's record, which grows with every launch and job: it is
written without a deep copy and with json's C encoder, and must still say exactly what
`dataclasses.asdict` said (gc, the reminders and older git-slurm versions read it)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from git_slurm.records import JobRef, Launch, SnapshotRecord, read_record, write_record


def test_the_record_is_written_as_asdict_says_and_reads_back_equal(tmp_path: Path) -> None:
    record = SnapshotRecord(
        worktree="/w", origin="/o", tree="t" * 40, base=None, links=["outputs", "a/b"],
        created=1.5, last_used=2.5,
        launches=[Launch(f"slurm-job-20240101-12000{n}", "c" * 40, 3.0 + n, "h:1:2")
                  for n in range(3)],
        jobs=[JobRef("12_3", "slurm", "node", 4.0, None, "b", "cl"),
              JobRef("77", "local", start_ticks=9)],
        shareable=False, submodules=["lib", "lib/inner"],
    )  # fmt: skip
    write_record(tmp_path, record)
    text = (tmp_path / "git-slurm.json").read_text()
    assert json.loads(text) == dataclasses.asdict(record)
    assert read_record(tmp_path) == record
    assert record.to_json()["launches"] is not record.launches  # a copy, not the record's own
