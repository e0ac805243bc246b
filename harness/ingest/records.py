"""The values every reader of `harness.ingest` returns: score rows, per-document rows, model sizes.

Readers only parse; sizes are resolved, duplicates checked and files written later
(`harness.ingest.importer`), so a bad source stops the import before anything is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from harness.checkpoint import revision_label


@dataclass(frozen=True)
class Sizes:
    """What the analysis needs to place a model revision: parameters and tokens trained (None: unknown)."""

    n_params: int | None = None
    n_params_nonembedding: int | None = None
    tokens_trained: int | None = None

    def or_else(self, other: Sizes) -> Sizes:
        """Each field from self where known, else from `other` (the precedence of sources).

        >>> Sizes(n_params=5).or_else(Sizes(n_params=7, tokens_trained=3))
        Sizes(n_params=5, n_params_nonembedding=None, tokens_trained=3)
        """
        return replace(self, **{f.name: getattr(other, f.name) for f in fields(self) if getattr(self, f.name) is None})


@dataclass(frozen=True)
class ScoreRecord:
    """One (model, revision, task, metric, filter) value as a source states it, sizes as the source states them."""

    model: str
    revision: str
    task: str
    metric: str
    filter: str
    value: float
    stderr: float | None
    n: int | None
    stated: Sizes = Sizes()
    # Whether the revision is a finished learning-rate schedule (results.schemas: finished_schedule), as
    # a table states it (a harness run's scores.parquet does); None where the source does not say.
    finished_schedule: bool | None = None

    @property
    def model_key(self) -> tuple[str, str]:
        return (self.model, self.revision)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.model, self.revision, self.task, self.metric, self.filter)


@dataclass(frozen=True)
class SampleSet:
    """Per-document rows of one (model, revision, task): `doc_id`, one float column per scalar metric
    (named by `results.schemas.sample_column`) and the continuous twins where the responses allow."""

    model: str
    revision: str
    task: str
    rows: tuple[dict[str, Any], ...]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model, self.revision, self.task)


@dataclass(frozen=True)
class Parsed:
    """One source file, read: what it is and what it holds."""

    path: Path
    format: str  # lm-eval-0.3 | lm-eval-0.4 | lm-eval-samples | csv | parquet
    scores: tuple[ScoreRecord, ...] = ()
    samples: tuple[SampleSet, ...] = ()
    notes: tuple[str, ...] = ()  # what was left out and why, for the progress line


def revision_of(value: Any) -> str:
    """A source's revision as a string; a missing one is "main", as everywhere in the harness."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return revision_label(None)
    return revision_label(str(value).strip())


def as_float(value: Any) -> float | None:
    """A number from a source; None for what lm-eval writes when it has none ("N/A", null, "")."""
    if isinstance(value, bool):
        return float(value)
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out


def as_flag(value: Any) -> bool | None:
    """A yes/no cell: a boolean (Parquet), or true/false/1/0 text (CSV); None when empty or anything else.

    >>> as_flag(True), as_flag("false"), as_flag(" TRUE "), as_flag(1.0), as_flag(""), as_flag(float("nan"))
    (True, False, True, True, None, None)
    """
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy's bool from a Parquet column
        return bool(value)
    text = str(value).strip().lower() if value is not None else ""
    return {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}.get(text)


def as_count(value: Any) -> int | None:
    """A parameter or token count (CSV cells may read as 7.0e7); None when missing or not a number."""
    number = as_float(value)
    if number is None or math.isnan(number):
        return None
    return int(round(number))
