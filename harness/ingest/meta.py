"""`--meta META.yaml`: sizes and tokens of models that neither the source nor the family table knows.

Format (every field optional; counts may be written 70_426_624, 70426624 or 7.04e7):

    models:
      my-org/my-model-1b:                 # the model name as the source spells it, or its last path component
        n_params: 1011781632
        n_params_nonembedding: 805736448
        tokens_per_step: 2097152          # tokens_trained = N x this for a revision named stepN
        tokens_trained: 3.0e11            # one figure for every revision ...
        # tokens_trained: {step1000: 2.1e9, main: 3.0e11}   # ... or one per revision

Precedence, field by field: what the source file states, then the family table
(`harness.ingest.families`), then this file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checkpoint import step_of
from harness.errors import UserError
from harness.ingest.records import Sizes, as_count

_FIELDS = {"n_params", "n_params_nonembedding", "tokens_per_step", "tokens_trained"}


@dataclass(frozen=True)
class ModelMeta:
    n_params: int | None = None
    n_params_nonembedding: int | None = None
    tokens_per_step: int | None = None
    tokens_trained: int | None = None  # one figure for every revision
    tokens_by_revision: Mapping[str, int] = field(default_factory=dict)

    def sizes(self, revision: str) -> Sizes:
        tokens = self.tokens_by_revision.get(revision, self.tokens_trained)
        step = step_of(revision)
        if tokens is None and self.tokens_per_step is not None and step is not None:
            tokens = step * self.tokens_per_step
        return Sizes(self.n_params, self.n_params_nonembedding, tokens)


@dataclass(frozen=True)
class Meta:
    """The models of a --meta file (empty without one)."""

    models: Mapping[str, ModelMeta] = field(default_factory=dict)
    source: str = "--meta"

    def sizes(self, model: str, revision: str) -> Sizes:
        """What the file says about a model revision, by the exact name first, then its last component."""
        entry = self.models.get(model) or self.models.get(model.rstrip("/").rsplit("/", 1)[-1])
        return entry.sizes(revision) if entry else Sizes()


def load_meta(path: Path | None) -> Meta:
    """Read and check a --meta file; one UserError line for anything wrong in it."""
    if path is None:
        return Meta()
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--meta {path}: no such file; pass a YAML file with a `models:` mapping")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise UserError(f"--meta {path}: not valid YAML ({reason}); fix the file") from None
    models = raw.get("models") if isinstance(raw, dict) else None
    if not isinstance(models, dict):
        raise UserError(f"--meta {path}: expected a top-level `models:` mapping of model name -> sizes")
    return Meta({str(name): _model_meta(path, str(name), entry) for name, entry in models.items()}, str(path))


def _model_meta(path: Path, name: str, entry: Any) -> ModelMeta:
    if not isinstance(entry, dict):
        raise UserError(f"--meta {path}: models.{name} must be a mapping (n_params, n_params_nonembedding, ...)")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise UserError(f"--meta {path}: models.{name} has unknown key(s) {', '.join(map(str, unknown))}; "
                        f"use {', '.join(sorted(_FIELDS))}")
    tokens = entry.get("tokens_trained")
    by_revision = tokens if isinstance(tokens, dict) else {}
    counts = {key: _count(path, name, key, entry.get(key))
              for key in ("n_params", "n_params_nonembedding", "tokens_per_step")}
    return ModelMeta(**counts, tokens_trained=None if by_revision else _count(path, name, "tokens_trained", tokens),
                     tokens_by_revision={str(r): _count(path, name, f"tokens_trained.{r}", v)
                                         for r, v in by_revision.items()})


def _count(path: Path, name: str, key: str, value: Any) -> int | None:
    if value is None:
        return None
    number = as_count(value.replace("_", "") if isinstance(value, str) else value)
    if number is None or number <= 0:
        raise UserError(f"--meta {path}: models.{name}.{key} = {value!r} is not a positive number")
    return number
