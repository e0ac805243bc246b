"""New score rows + the rows already in the run folder -> one table, or a one-line conflict.

A row is keyed (model, revision, task, metric, filter). The same key twice with equal values
(value, stderr, n and sizes; NaN equals NaN) is one row: importing the same file again, or the same
results from two files, changes nothing. The same key with different values is a conflict, whether
both come from this import or one from the folder, and stops the import before anything is written.
Rows are written sorted (model, revision in training order, task, metric, filter), so the same rows
always give the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.checkpoint import training_order
from harness.errors import UserError
from harness.ingest.records import ScoreRecord, Sizes
from harness.results.schemas import SCORES_SCHEMA

Key = tuple[str, str, str, str, str]


@dataclass(frozen=True)
class Merged:
    rows: tuple[dict[str, Any], ...]  # SCORES_SCHEMA rows, sorted
    added: int  # keys the folder did not have before


def score_row(record: ScoreRecord, sizes: Sizes) -> dict[str, Any]:
    """A SCORES_SCHEMA row: the record's own values with its model revision's resolved sizes."""
    return {"model": record.model, "revision": record.revision, "task": record.task, "metric": record.metric,
            "filter": record.filter, "value": record.value, "stderr": record.stderr, "n": record.n,
            "n_params": sizes.n_params, "n_params_nonembedding": sizes.n_params_nonembedding,
            "tokens_trained": sizes.tokens_trained,
            # lm-eval outputs do not say whether a revision finished its schedule (None); a table may
            "finished_schedule": record.finished_schedule}


def merge_rows(new: Iterable[tuple[Path, dict]], existing: Iterable[tuple[Path, dict]]) -> Merged:
    """Every distinct row of `existing` and `new` ((where it came from, row) pairs); UserError on a conflict."""
    held: dict[Key, tuple[Path, dict]] = {}
    for where, row in existing:
        held[_key(row)] = (where, row)
    before = len(held)
    for where, row in new:
        key = _key(row)
        if key in held and not same_row(held[key][1], row):
            raise UserError(_conflict(where, row, *held[key]))
        held.setdefault(key, (where, row))
    rows = sorted((row for _, row in held.values()), key=_order)
    return Merged(tuple(rows), len(held) - before)


def same_row(a: Mapping, b: Mapping) -> bool:
    """Equal in every column of the scores table, NaN and null counting as equal."""
    return all(_same(a.get(name), b.get(name)) for name in SCORES_SCHEMA.names)


def _same(x: Any, y: Any) -> bool:
    missing_x = x is None or (isinstance(x, float) and math.isnan(x))
    missing_y = y is None or (isinstance(y, float) and math.isnan(y))
    return missing_x and missing_y if missing_x or missing_y else x == y


def _key(row: Mapping) -> Key:
    return (row["model"], row["revision"], row["task"], row["metric"], row["filter"])


def _order(row: Mapping) -> tuple:
    return (row["model"], training_order(row["revision"], row["tokens_trained"]), row["task"], row["metric"],
            row["filter"])


def _conflict(where: Path, row: Mapping, other_where: Path, other: Mapping) -> str:
    differs = [name for name in SCORES_SCHEMA.names if not _same(row.get(name), other.get(name))]
    shown = ", ".join(f"{name} {row.get(name)!r} vs {other.get(name)!r}" for name in differs)
    return (f"{where}: {row['model']}@{row['revision']} {row['task']} {row['metric']},{row['filter']} conflicts "
            f"with {other_where} ({shown}); drop one of the two, or import into a new folder")
