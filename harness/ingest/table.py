"""A plain table of scores (CSV or Parquet) -> score rows.

Columns: model, revision, n_params, tokens_trained, task, metric, value (required; a cell may be empty
where a figure is unknown: revision -> "main", counts -> looked up as for any source), and stderr, n,
filter (-> "none"), n_params_nonembedding, finished_schedule (optional). Other columns are ignored. A
scores.parquet of another run folder is such a table, so folders can be merged this way.
"""

from __future__ import annotations

import math
from pathlib import Path

from harness.errors import UserError
from harness.ingest.records import Parsed, ScoreRecord, Sizes, as_count, as_flag, as_float, revision_of

REQUIRED = ("model", "revision", "n_params", "tokens_trained", "task", "metric", "value")
OPTIONAL = ("stderr", "n", "filter", "n_params_nonembedding", "finished_schedule")


def read_frame(path: Path, kind: str):
    """The table as a DataFrame of strings and numbers; one UserError line when it cannot be read."""
    import pandas as pd

    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype={"model": str, "revision": str, "task": str, "metric": str, "filter": str},
                           keep_default_na=False, na_values=[""])
    except Exception as exc:  # noqa: BLE001 - pandas and pyarrow raise many types for a bad file
        raise UserError(f"{path}: cannot read it as {kind} ({' '.join(str(exc).split())[:160]}); fix or "
                        "drop the file") from None


def parse_table(path: Path, kind: str, frame=None) -> Parsed:
    frame = read_frame(path, kind) if frame is None else frame
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: not a result table: missing column(s) {', '.join(missing)} (needs "
                        f"{', '.join(REQUIRED)}; optional {', '.join(OPTIONAL)})")
    rows = []
    for i, rec in enumerate(frame.to_dict("records")):
        value = as_float(rec["value"])
        if not _text(rec["model"]) or not _text(rec["task"]) or not _text(rec["metric"]) or value is None:
            raise UserError(f"{path}: row {i + 1} lacks a model, task, metric or numeric value; fill it in or drop it")
        stated = Sizes(as_count(rec["n_params"]), as_count(rec.get("n_params_nonembedding")),
                       as_count(rec["tokens_trained"]))
        stderr = as_float(rec.get("stderr"))
        rows.append(ScoreRecord(_text(rec["model"]), revision_of(_text(rec["revision"]) or None), _text(rec["task"]),
                                _text(rec["metric"]), _text(rec.get("filter")) or "none", value,
                                None if stderr is None or math.isnan(stderr) else stderr, as_count(rec.get("n")),
                                stated, as_flag(rec.get("finished_schedule"))))
    return Parsed(path, kind, tuple(rows))


def _text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()
