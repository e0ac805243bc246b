"""What a checkpoint is and what its files say: the value type every stage shares, read without torch.

`plan` resolves a sweep's models to `Checkpoint`s, `backends` loads them, `results` and `analysis`
order their revisions. Everything here reads files only (never weights into memory), so each of
those packages imports it downward and none of them imports another for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError
from harness.files import user_cache_dir

DEFAULT_REVISION = "main"  # what a hub and this harness call the revision of a model given without one
_STEP = re.compile(r"^step(\d+)$")
# Files that decide what a checkpoint computes, by suffix; trainer state beside them, by prefix.
_CONTENT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".json", ".model", ".txt", ".tiktoken", ".py"}
_TRAINER_STATE = ("optimizer", "scheduler", "rng_state", "trainer_state", "training_args")


@dataclass(frozen=True)
class Checkpoint:
    """Where a model revision comes from: a local folder, or a hub id plus revision."""

    source: str  # local folder (absolute) or hub id
    revision: str | None  # hub revision; None for local folders
    is_local: bool
    tokens_trained: int | None  # from harness.json or known family metadata
    # The commit a hub revision resolved to when planned (None: local, or the hub gave none):
    # what the shard key records and what a worker loads, so that "main" moving on cannot mix.
    commit: str | None = None
    # Whether the learning rate had fully decayed at this revision (True: a run trained for exactly
    # tokens_trained, e.g. every revision of a WSD-built ladder; False: a mid-schedule checkpoint; None:
    # unknown). The L(N, D) fit counts only finished schedules as separate runs. Last, with a default,
    # so constructors written before it still build a Checkpoint.
    finished_schedule: bool | None = None


def revision_label(revision: str | None) -> str:
    """The one spelling of a revision in keys, paths and tables: a missing revision (None, or a
    null read back from Parquet) is "main".

    >>> revision_label(None), revision_label(float("nan")), revision_label("step256")
    ('main', 'main', 'step256')
    """
    return revision if isinstance(revision, str) and revision else DEFAULT_REVISION


def step_of(revision: str | None) -> int | None:
    """The training step of a `step<N>` revision (Pythia's naming), else None."""
    match = _STEP.match(revision if isinstance(revision, str) else "")  # None, or a null from Parquet
    return int(match.group(1)) if match else None


def runs_revision(task_revisions: str, label: str, is_final: bool) -> bool:
    """Whether a task whose `revisions:` is task_revisions ("all", "final" or one revision label) runs
    on a model revision labelled `label` (is_final: the model's last in training_order)."""
    if task_revisions == "all":
        return True
    return is_final if task_revisions == "final" else label == task_revisions


def training_order(revision: str | None, tokens: int | None = None) -> tuple:
    """Sort key that puts revisions in training order: by tokens trained, then step, then name.

    The last revision in this order is a model's *final* one, for the plan (tasks restricted to
    `revisions: final`) and the analysis alike.

    >>> sorted(["step1000", "step143000", "step256"], key=training_order)
    ['step256', 'step1000', 'step143000']
    """
    step = step_of(revision)
    return (tokens is not None, tokens or 0, step is not None, step or 0, revision_label(revision))


def check_weights_format(checkpoint: Checkpoint, allow_pickle: bool) -> None:
    """Refuse pickle-only local checkpoints: unpickling runs arbitrary code."""
    if not checkpoint.is_local or allow_pickle:
        return
    folder = Path(checkpoint.source)
    if any(folder.glob("*.safetensors")):
        return
    if any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
        raise UserError(
            f"{folder}: only pickle weights (pytorch_model.bin) found; pickle can run code on load. "
            f"Convert to safetensors, or opt in with `allow_pickle: true` in the sweep / --allow-pickle"
        )
    raise UserError(f"{folder}: no model weights (*.safetensors) found")


def safetensors_param_count(folder: Path) -> int | None:
    """Parameters from safetensors headers (8-byte length + JSON), without reading any weights."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        try:
            with path.open("rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                if length > path.stat().st_size:
                    return None  # not a safetensors file; loading it will fail with the reason
                header = json.loads(handle.read(length))
        except (OSError, struct.error, ValueError):
            return None
        for name, info in header.items():
            if name != "__metadata__":
                count = 1
                for dim in info["shape"]:
                    count *= dim
                total += count
    return total


def _content_files(folder: Path) -> Iterable[Path]:
    """The files that decide what a model computes: weights, config, tokenizer (and remote code).
    Trainer state beside them (optimizer, scheduler, RNG) is skipped: it can be gigabytes."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix in _CONTENT_SUFFIXES
                  and not p.name.startswith(_TRAINER_STATE))


def _cache_file() -> Path:
    return user_cache_dir() / "file-digests.json"


def _stat_key(path: Path) -> str:
    """Path, size, mtime, inode and ctime: a copy that keeps the mtime (`cp -p`, rsync -a) still
    gets a new inode or ctime, and ctime cannot be set from user space."""
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}|{stat.st_ctime_ns}"


class _DigestCache:
    """sha256 per file, kept in memory for the process and on disk between runs."""

    def __init__(self) -> None:
        self.digests: dict[str, str] | None = None
        self.dirty = False

    def digest(self, path: Path) -> str:
        if self.digests is None:
            self.digests = _load_cache(_cache_file())
        key = _stat_key(path)
        if key not in self.digests:
            sha = hashlib.sha256()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    sha.update(block)
            self.digests[key], self.dirty = sha.hexdigest(), True
        return self.digests[key]

    def save(self) -> None:
        if self.dirty:
            _save_cache(_cache_file(), self.digests)
            self.dirty = False  # a failed save costs one hash per file next run, not one per call


_DIGESTS = _DigestCache()


def content_fingerprint(checkpoint: Checkpoint) -> list:
    """What a shard key records about a model: the content of a local folder's files (weights,
    config, tokenizer), or a hub id, its revision and the commit that revision resolved to (a
    commit names one content; a branch such as `main` does not, so an unresolved one is only
    as good as the name).

    Sizes alone are not enough: retraining the same architecture writes files of the same size.
    """
    if not checkpoint.is_local:
        return [checkpoint.source, checkpoint.revision, checkpoint.commit]
    files = [(p.name, _DIGESTS.digest(p)) for p in _content_files(Path(checkpoint.source))]
    _DIGESTS.save()
    return files


def _load_cache(path: Path) -> dict[str, str]:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _still_current(key: str) -> bool:
    path = Path(key.rsplit("|", 4)[0])
    try:
        return _stat_key(path) == key
    except OSError:
        return False


def _save_cache(path: Path, cache: dict) -> None:
    """Best effort: a read-only home only costs a re-hash next run. Entries of files that are gone
    or were rewritten are dropped, so the cache does not grow with every rebuilt checkpoint."""
    cache = {k: v for k, v in cache.items() if _still_current(k)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, path)
    except OSError:
        pass
