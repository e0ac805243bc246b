"""The results contract: Arrow schemas, atomic Parquet writes and readers.

Layout of a run folder (README, "Results"):
    manifest.json
    requests/<model>/<task>/<shard-key>.parquet   one row per request (written per shard)
    samples/<model>/<task>.parquet                one row per document (derived from requests)
    scores.parquet                                one row per (model, revision, task, metric, filter)
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REQUESTS_SCHEMA = pa.schema([
    ("model", pa.string()),
    ("revision", pa.string()),
    ("task", pa.string()),
    ("doc_id", pa.int64()),
    # -1 marks the harness's own request: log-likelihood of the gold target of a generation task.
    ("request_idx", pa.int64()),
    ("request_type", pa.string()),
    ("loglikelihood", pa.float64()),
    ("is_greedy", pa.bool_()),
    ("n_tokens", pa.int64()),
    ("generation", pa.string()),
    ("shard", pa.string()),
])

# Samples carry one float column per scalar lm-eval metric, so only the fixed part is typed here.
SAMPLES_FIXED = pa.schema([
    ("model", pa.string()),
    ("revision", pa.string()),
    ("task", pa.string()),
    ("doc_id", pa.int64()),
    ("target_loglik", pa.float64()),
    ("brier", pa.float64()),
    ("edit_distance", pa.float64()),
    ("n_tokens", pa.int64()),
    ("n_bytes", pa.int64()),
    ("n_words", pa.int64()),
])

SCORES_SCHEMA = pa.schema([
    ("model", pa.string()),
    ("revision", pa.string()),
    ("task", pa.string()),
    ("metric", pa.string()),
    ("filter", pa.string()),
    ("value", pa.float64()),
    ("stderr", pa.float64()),
    ("n", pa.int64()),
    ("n_params", pa.int64()),
    ("n_params_nonembedding", pa.int64()),
    ("tokens_trained", pa.int64()),
])

TARGET_REQUEST_IDX = -1


def safe_name(text: str) -> str:
    """A path component that cannot escape the results folder."""
    return re.sub(r"[^A-Za-z0-9._\-]+", "_", text).strip("._") or "_"


def write_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet file so that readers see either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def table_from_rows(rows: Iterable[Mapping], schema: pa.Schema) -> pa.Table:
    """Rows -> table with exactly `schema` (validation on write: a missing column is an error)."""
    rows = list(rows)
    columns = {f.name: [r[f.name] for r in rows] for f in schema}
    return pa.table(columns, schema=schema)


def samples_table(rows: list[Mapping]) -> pa.Table:
    """Fixed sample columns plus one float64 column per scalar metric seen in the rows."""
    extra = sorted({k for r in rows for k in r} - set(SAMPLES_FIXED.names))
    schema = pa.schema(list(SAMPLES_FIXED) + [(name, pa.float64()) for name in extra])
    columns = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.table(columns, schema=schema)


def requests_path(run_dir: Path, model: str, revision: str | None, task: str, key: str) -> Path:
    return run_dir / "requests" / safe_name(model) / safe_name(revision or "main") / safe_name(task) / f"{key}.parquet"


def samples_path(run_dir: Path, model: str, revision: str | None, task: str) -> Path:
    return run_dir / "samples" / safe_name(model) / safe_name(revision or "main") / f"{safe_name(task)}.parquet"


def read_table(path: Path):
    """One Parquet file or a folder of them (hive folders are not used) as a DataFrame."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        return pd.DataFrame()  # e.g. a run in which no shard finished
    if path.is_dir():
        files = sorted(path.rglob("*.parquet"))
        if not files:
            return pd.DataFrame()
        return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
    return pq.read_table(path).to_pandas()


def read_scores(run_dir: Path):
    return read_table(Path(run_dir) / "scores.parquet")


def read_samples(run_dir: Path):
    return read_table(Path(run_dir) / "samples")


def read_requests(run_dir: Path):
    return read_table(Path(run_dir) / "requests")
