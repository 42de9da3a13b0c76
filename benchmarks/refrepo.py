"""A deterministic reference repository shaped like an ML research repo, cached between runs.

Tracked: nested Python packages of ~6 KB modules, YAML configs, a Hydra app (`train.py`) and
binary assets. Ignored: `data/` (large files) and `outputs/` (many small Hydra run files). On
top of the commit, a dirty state: modified, untracked and deleted files.

Every byte comes from a seeded generator, so two builds of one size are identical (same commit
id). The build is kept under `<root>/<size>/` with a stamp of its parameters; `prepare` brings
a cached build back to its canonical dirty state and removes what earlier runs left.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
from dataclasses import asdict, dataclass, replace
from pathlib import Path

GENERATOR_VERSION = 3
DEFAULT_ROOT = Path("/tmp/git-slurm-bench")
FIXED_DATE = "2024-01-01T12:00:00+00:00"


RUN_ONLY = {"sweep_jobs", "disk_snapshots", "probe_bytes"}


@dataclass(frozen=True)
class Size:
    """The shape of one reference repository."""

    name: str
    files: int  # tracked source files
    file_bytes: int
    assets: int  # tracked binary files
    asset_bytes: int
    data_bytes: int  # ignored data/
    data_files: int
    outputs: int  # ignored small files under outputs/
    modified: int
    untracked: int
    deleted: int
    sweep_jobs: int  # jobs of the submitit_local sweep
    disk_snapshots: int  # snapshots made for the disk-use figure
    probe_bytes: int  # a file this big is captured and checked out for the memory figure
    seed: int = 7

    def stamp(self) -> str:
        """Names a build: what the generated repository depends on, nothing else."""
        built = {k: v for k, v in asdict(self).items() if k not in RUN_ONLY}
        text = json.dumps({"v": GENERATOR_VERSION, **built}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


SIZES = {
    "full": Size(
        name="full",
        files=8000,
        file_bytes=6 * 1024,
        assets=20,
        asset_bytes=2 * 2**20,
        data_bytes=400 * 2**20,
        data_files=8,
        outputs=2000,
        modified=40,
        untracked=15,
        deleted=3,
        sweep_jobs=100,
        disk_snapshots=10,
        probe_bytes=512 * 2**20,
    ),
    "small": Size(
        name="small",
        files=500,
        file_bytes=6 * 1024,
        assets=2,
        asset_bytes=2**20,
        data_bytes=8 * 2**20,
        data_files=2,
        outputs=100,
        modified=10,
        untracked=5,
        deleted=3,
        sweep_jobs=10,
        disk_snapshots=3,
        probe_bytes=64 * 2**20,
    ),
}

# netfs.py: between small and full, to see what grows with the file count
SIZES["medium"] = replace(SIZES["small"], name="medium", files=2000)

GITIGNORE = "/data/\n/outputs/\n/multirun/\n/.submitit/\n__pycache__/\n*.pyc\n*.ckpt\n"

TRAIN_APP = '''"""The reference repository's Hydra app: one quick job."""
import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    return float(cfg.lr) * int(cfg.seed)


if __name__ == "__main__":
    main()
'''

TRAIN_CONFIG = "lr: 0.001\nseed: 0\nbatch_size: 32\n"

SYLLABLES = [
    "al", "be", "co", "da", "en", "fo", "ga", "hi", "io", "ju", "ka", "lo", "mi", "no",
    "op", "pa", "qu", "ra", "si", "to", "ul", "ve", "wa", "xe", "yo", "ze",
]  # fmt: skip
WORDS = [
    "def", "return", "import", "self", "tensor", "batch", "loss", "model", "layer", "config",
    "for", "in", "if", "else", "None", "True", "float", "int", "shape", "dim", "weight",
]  # fmt: skip


def _name(rng: random.Random, parts: int = 3) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts))


def source_text(seed: str, size: int) -> str:
    """Code-like text of about `size` bytes (compresses like real code, not like noise)."""
    rng = random.Random(seed)
    idents = [_name(rng, rng.randint(2, 4)) for _ in range(40)]
    lines = [f'"""Module {seed}."""', "import math", ""]
    length = sum(len(x) + 1 for x in lines)
    while length < size:
        if rng.random() < 0.15:
            line = f"\n\ndef {rng.choice(idents)}_{rng.randint(0, 999)}(x, y={rng.random():.3f}):"
        else:
            words = [rng.choice(idents if rng.random() < 0.5 else WORDS) for _ in range(6)]
            line = "    " + " ".join(words) + f"  # {rng.randint(0, 10**6)}"
        lines.append(line)
        length += len(line) + 1
    return "\n".join(lines) + "\n"


def package_dirs(rng: random.Random, count: int) -> list[str]:
    """`count` nested package directories under src/, at most five levels deep."""
    dirs = ["src/project"]
    while len(dirs) < count:
        parent = rng.choice(dirs)
        if parent.count("/") >= 5:
            continue
        child = f"{parent}/{_name(rng)}"
        if child not in dirs:
            dirs.append(child)
    return dirs


def tracked_layout(size: Size) -> dict[str, int]:
    """repository-relative path -> seed index of every generated source file."""
    rng = random.Random(size.seed)
    dirs = package_dirs(rng, max(1, size.files // 16))
    layout: dict[str, int] = {}
    for d in dirs:
        layout[f"{d}/__init__.py"] = len(layout)
    while len(layout) < size.files:
        folder = rng.choice([*dirs, "tests", "scripts", "conf/model", "conf/data"])
        ext = ".yaml" if folder.startswith("conf") else ".py"
        layout[f"{folder}/{_name(rng)}{ext}"] = len(layout)
    return layout


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_tracked(repo: Path, size: Size) -> list[str]:
    layout = tracked_layout(size)
    for rel, n in layout.items():
        write(repo / rel, source_text(f"{size.seed}:{n}", size.file_bytes).encode())
    rng = random.Random(size.seed + 1)
    for n in range(size.assets):
        write(repo / f"assets/embedding_{n:02d}.bin", rng.randbytes(size.asset_bytes))
    write(repo / ".gitignore", GITIGNORE.encode())
    write(repo / "train.py", TRAIN_APP.encode())
    write(repo / "conf/config.yaml", TRAIN_CONFIG.encode())
    write(repo / "README.md", b"# reference project\n")
    return sorted(layout)


def write_ignored(repo: Path, size: Size) -> None:
    """data/: a few big files from a repeated seeded block; outputs/: Hydra-style run dirs."""
    block = random.Random(size.seed + 2).randbytes(2**20)
    per_file = size.data_bytes // max(1, size.data_files)
    (repo / "data").mkdir(exist_ok=True)
    for n in range(size.data_files):
        with (repo / f"data/shard_{n:02d}.npy").open("wb") as out:
            for _ in range(per_file // len(block)):
                out.write(block)
    for n in range(size.outputs):
        run = f"outputs/2024-01-{n // 500 + 1:02d}/{n % 500:03d}"
        write(repo / f"{run}/main.log", f"run {n}\nloss {n * 0.01:.3f}\n".encode())


def dirty_paths(size: Size, tracked: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(modified, untracked, deleted) paths of the canonical dirty state."""
    rng = random.Random(size.seed + 3)
    picked = rng.sample(
        [p for p in tracked if not p.endswith("__init__.py")], size.modified + size.deleted
    )
    untracked = [f"src/project/scratch_{n:02d}.py" for n in range(size.untracked)]
    return picked[: size.modified], untracked, picked[size.modified :]


def apply_dirty_state(repo: Path, size: Size, tracked: list[str]) -> None:
    modified, untracked, deleted = dirty_paths(size, tracked)
    for rel in modified:
        with (repo / rel).open("a") as handle:
            handle.write("# local experiment tweak\n")
    for n, rel in enumerate(untracked):
        write(repo / rel, source_text(f"untracked:{n}", size.file_bytes).encode())
    for rel in deleted:
        (repo / rel).unlink()


def git(repo: Path, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def build(repo: Path, size: Size, env: dict[str, str]) -> None:
    """Generate, commit with fixed dates (a stable commit id), leave the dirty state."""
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main", env=env)
    write_tracked(repo, size)
    dated = dict(env, GIT_AUTHOR_DATE=FIXED_DATE, GIT_COMMITTER_DATE=FIXED_DATE)
    git(repo, "add", "-A", env=env)
    git(repo, "commit", "-q", "-m", "reference project", env=dated)
    git(repo, "gc", "-q", env=env)  # one pack, as a cloned repository has
    write_ignored(repo, size)


def tracked_files(repo: Path, env: dict[str, str]) -> list[str]:
    return sorted(git(repo, "ls-tree", "-r", "-z", "--name-only", "HEAD", env=env).split("\0")[:-1])


def prepare(root: Path, size: Size, env: dict[str, str]) -> Path:
    """The reference repository in its canonical dirty state, built once per parameter set."""
    home = root / size.name
    repo = home / "repo"
    stamp = home / "STAMP"
    if not stamp.exists() or stamp.read_text() != size.stamp():
        build(repo, size, env)
        stamp.write_text(size.stamp())
    reset(repo, size, env)
    return repo


def reset(repo: Path, size: Size, env: dict[str, str]) -> None:
    """Drop every worktree and branch but main, and restore the canonical dirty state."""
    remove_snapshots(repo, env)
    shutil.rmtree(repo / "multirun", ignore_errors=True)
    shutil.rmtree(repo / ".submitit", ignore_errors=True)
    git(repo, "reset", "-q", "--hard", "HEAD", env=env)
    git(repo, "clean", "-q", "-fd", env=env)
    apply_dirty_state(repo, size, tracked_files(repo, env))
    git(repo, "status", "--porcelain", env=env)  # a user's index has a fresh stat cache


def remove_snapshots(repo: Path, env: dict[str, str]) -> None:
    """Every linked worktree and every branch but main, as if no snapshot was ever made."""
    remove_worktrees(repo, env)
    branches = git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/", env=env).split()
    doomed = "".join(f"delete {ref}\n" for ref in branches if ref != "refs/heads/main")
    if doomed:
        subprocess.run(
            ["git", "update-ref", "--stdin"], input=doomed, text=True, cwd=repo, env=env, check=True
        )
    os.sync()  # the next timed case should not pay for this removal's I/O


def remove_worktrees(repo: Path, env: dict[str, str]) -> None:
    """Remove linked worktrees (locked ones too) without asking git to check them out."""
    admin = repo / ".git" / "worktrees"
    for entry in admin.glob("*"):
        gitdir = entry / "gitdir"
        if gitdir.exists():
            worktree = Path(gitdir.read_text().strip()).parent
            if worktree.is_dir():
                shutil.rmtree(worktree)
        shutil.rmtree(entry)
    snapshots = repo / ".git" / "slurm-snapshots"
    if snapshots.exists():
        shutil.rmtree(snapshots)
    git(repo, "worktree", "prune", env=env)


def disk_bytes(*roots: Path) -> int:
    """Bytes of disk blocks under `roots`, each inode counted once (hard links share)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                st = os.lstat(os.path.join(dirpath, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total
