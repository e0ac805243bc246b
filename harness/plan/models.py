"""The model revisions a sweep names: where each lives, how big it is, how long it trained.

Resolution rules (documented in the README):
* A local folder holding `config.json` is a checkpoint; a revision then must be None.
* A local folder of revision sub-folders (`<path>/<revision>/config.json`, Pythia-style `step<N>`)
  resolves revision None to the highest `step<N>`.
* Anything else that looks like `owner/name` is a hub id, loaded by transformers with `revision=`.

A model's *final* revision is the last in training order (`harness.checkpoint.training_order`),
whatever order the sweep lists its revisions in.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from harness.checkpoint import (Checkpoint, revision_label, runs_revision, safetensors_param_count, step_of,
                                training_order)
from harness.config import ModelSpec, Sweep
from harness.errors import UserError

# Pythia: every checkpoint step is 2,097,152 tokens (1024 sequences x 2048 tokens); `main` is
# step 143000 (Biderman et al. 2023).
PYTHIA_TOKENS_PER_STEP = 2_097_152
PYTHIA_FINAL_STEP = 143_000
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_HUB_TIMEOUT_S = 10.0


def local_revisions(path: Path) -> list[str]:
    """Revision sub-folders of a ladder folder, in training order."""
    subs = [p.name for p in path.iterdir() if (p / "config.json").is_file()] if path.is_dir() else []
    return sorted(subs, key=lambda name: (step_of(name) is None, step_of(name) or 0, name))


def _read_meta(folder: Path) -> tuple[int | None, bool | None]:
    """(tokens_trained, finished_schedule) from the folder's harness.json (read once); None for a
    missing file or key, and for a finished_schedule that is not a JSON boolean."""
    meta = folder / "harness.json"
    if not meta.is_file():
        return None, None
    data = json.loads(meta.read_text())
    tokens, finished = data.get("tokens_trained"), data.get("finished_schedule")
    return (int(tokens) if tokens is not None else None), (finished if isinstance(finished, bool) else None)


def _pythia_step(hub_id: str, revision: str | None) -> int | None:
    """The training step of a Pythia revision (`main` is the final one); None for other hub ids
    and for revisions that name no step (a commit, a branch)."""
    if "pythia" not in hub_id.lower():
        return None
    return step_of(revision) if revision not in (None, "main") else PYTHIA_FINAL_STEP


def known_tokens(hub_id: str, revision: str | None) -> int | None:
    """Tokens trained for families whose schedule is public."""
    step = _pythia_step(hub_id, revision)
    return None if step is None else step * PYTHIA_TOKENS_PER_STEP


def known_finished_schedule(hub_id: str, revision: str | None) -> bool | None:
    """Whether a hub revision is a finished learning-rate schedule, for families whose schedule is
    public: Pythia trains one cosine schedule over PYTHIA_FINAL_STEP steps, so only its final step
    (`main`) is finished and every earlier step is a mid-schedule checkpoint.

    >>> [known_finished_schedule("EleutherAI/pythia-70m", r) for r in ("step1000", "step143000", "main")]
    [False, True, True]
    >>> known_finished_schedule("gpt2-org/gpt2", None) is None
    True
    """
    step = _pythia_step(hub_id, revision)
    return None if step is None else step >= PYTHIA_FINAL_STEP


def resolve(path: str, revision: str | None, base: Path | None = None) -> Checkpoint:
    """Find a model revision, without loading it.

    Raises:
        UserError: a local path that does not exist, or a revision the folder lacks.
    """
    local = Path(path).expanduser()
    if not local.is_absolute() and base is not None and not local.exists():
        local = base / local
    if local.exists():
        return _resolve_local(local.resolve(), path, revision)
    if path.startswith((".", "/", "~")) or not _HUB_ID.match(path):
        raise UserError(
            f"model path {path!r} does not exist; give an existing folder with config.json "
            f"or a hub id like EleutherAI/pythia-70m"
        )
    return Checkpoint(source=path, revision=revision, is_local=False, tokens_trained=known_tokens(path, revision),
                      finished_schedule=known_finished_schedule(path, revision))


def _resolve_local(folder: Path, shown: str, revision: str | None) -> Checkpoint:
    if (folder / "config.json").is_file():
        if revision not in (None, "main"):
            raise UserError(
                f"model {shown!r}: revision {revision!r} does not exist; this folder is a single "
                f"checkpoint, drop the revision"
            )
        return _local_checkpoint(folder)
    revisions = local_revisions(folder)
    if not revisions:
        raise UserError(f"model path {shown!r} has no config.json and no revision sub-folders; "
                        f"point it at a transformers checkpoint folder")
    chosen = revisions[-1] if revision in (None, "main") else revision
    if chosen not in revisions:
        raise UserError(f"model {shown!r}: revision {revision!r} does not exist; "
                        f"available: {', '.join(revisions)}")
    return _local_checkpoint(folder / chosen)


def _local_checkpoint(folder: Path) -> Checkpoint:
    tokens, finished = _read_meta(folder)
    return Checkpoint(str(folder), None, True, tokens, finished_schedule=finished)


@dataclass(frozen=True)
class ModelRevision:
    """One model revision of the sweep: what a replica loads and what its shards are scored on."""

    name: str
    revision: str | None
    spec: ModelSpec
    checkpoint: Checkpoint
    n_params_estimate: int | None

    @property
    def key(self) -> str:
        return f"{self.name}@{revision_label(self.revision)}"

    @property
    def tokens_trained(self) -> int | None:
        stated = self.spec.tokens_for(self.revision)
        return stated if stated is not None else self.checkpoint.tokens_trained

    @property
    def finished_schedule(self) -> bool | None:
        """Whether this revision's learning rate had fully decayed (`Checkpoint.finished_schedule`)."""
        return self.checkpoint.finished_schedule

    @property
    def order(self) -> tuple:
        """Training order. A local ladder given without a revision resolves to its last `step<N>`
        folder, which orders it as that step."""
        revision = self.revision
        if revision in (None, "main") and self.checkpoint.is_local:
            revision = Path(self.checkpoint.source).name
        return training_order(revision, self.tokens_trained)


def _hub_offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _cached_commit(hub_id: str, revision: str) -> str | None:
    """The commit the local hub cache records for `revision` (what an offline load would use)."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        return None
    ref = Path(HF_HUB_CACHE) / f"models--{hub_id.replace('/', '--')}" / "refs" / revision
    try:
        text = ref.read_text().strip()
    except OSError:
        return None
    return text if _COMMIT.match(text) else None


@lru_cache(maxsize=None)
def hub_commit(hub_id: str, revision: str | None) -> str | None:
    """The commit a hub revision (branch, tag or commit) names now, or None where nobody can say.

    The hub is asked first (a branch moves on; the cache may hold an older commit), then the local
    hub cache (offline, a model that loads at all was downloaded, and its ref is there). Every
    failure is None: planning never needs the network, it only keys more precisely with it.
    """
    label = revision_label(revision)
    if _COMMIT.match(label):
        return label
    if not _hub_offline():
        try:
            from huggingface_hub import HfApi

            sha = HfApi().model_info(hub_id, revision=label, timeout=_HUB_TIMEOUT_S).sha
            if sha and _COMMIT.match(sha):
                return sha
        except Exception:  # noqa: BLE001 - no network, no such repo, a gated one: fall back to the cache
            pass
    return _cached_commit(hub_id, label)


def with_hub_commits(checkpoints: list[Checkpoint]) -> list[Checkpoint]:
    """Hub checkpoints with the commit each revision resolves to; local ones as they are. Asked
    in parallel: a Pythia ladder is ~190 revisions, and each question is a round trip."""
    hub = sorted({(c.source, c.revision) for c in checkpoints if not c.is_local},
                 key=lambda pair: (pair[0], revision_label(pair[1])))
    if not hub:
        return checkpoints  # local folders only: nothing to ask
    with ThreadPoolExecutor(max_workers=8) as pool:
        commits = dict(zip(hub, pool.map(lambda pair: hub_commit(*pair), hub)))
    return [c if c.is_local else replace(c, commit=commits[(c.source, c.revision)]) for c in checkpoints]


def model_revisions(sweep: Sweep, base: Path | None = None) -> list[ModelRevision]:
    """Every (model, revision) of the sweep, resolved to a checkpoint (hub revisions to their commit
    where the hub or its cache says); no weights are read."""
    pairs = [(spec, revision) for spec in sweep.models for revision in spec.revisions]
    checkpoints = with_hub_commits([resolve(spec.path, revision, base) for spec, revision in pairs])
    revisions = []
    for (spec, revision), checkpoint in zip(pairs, checkpoints):
        estimate = spec.n_params or (
            safetensors_param_count(Path(checkpoint.source)) if checkpoint.is_local else None)
        revisions.append(ModelRevision(spec.name, revision, spec, checkpoint, estimate))
    return revisions


def runs_task(task_revisions: str, model: ModelRevision, finals: set[str]) -> bool:
    """Whether a task with this `revisions:` setting runs on the model revision (finals: final_revisions)."""
    return runs_revision(task_revisions, revision_label(model.revision), model.key in finals)


def final_revisions(revisions: list[ModelRevision]) -> set[str]:
    """Keys of each model's last revision in training order (not the last one listed)."""
    last: dict[str, ModelRevision] = {}
    for rev in revisions:
        if rev.name not in last or rev.order > last[rev.name].order:
            last[rev.name] = rev
    return {rev.key for rev in last.values()}
