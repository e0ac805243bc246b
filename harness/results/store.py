"""Every write and read of a run folder: atomic files, the paths of shards and samples, reuse.

Readers of a run folder see a file whole or not at all: every file is written to a temporary
name in its folder and renamed. A missing revision is spelled once (`revision_label`), so the
paths written by the engine and read by the results stage can never disagree.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from harness.checkpoint import revision_label
from harness.results.schemas import REQUESTS_SCHEMA, SAMPLES_FIXED

if TYPE_CHECKING:  # a type only: importing the plan would load lm-eval for every reader
    from harness.plan.shards import Shard


def safe_name(text: str) -> str:
    """A path component that cannot escape the results folder."""
    return re.sub(r"[^A-Za-z0-9._\-]+", "_", text).strip("._") or "_"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` only if the block succeeds,
    removed if it fails, so readers see the previous file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet file atomically (`atomic_path`)."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def write_text_atomic(text: str, path: Path) -> None:
    """Write a text file (manifest, report) atomically, as UTF-8."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def requests_path(run_dir: Path, model: str, revision: str | None, task: str, key: str) -> Path:
    return run_dir / "requests" / safe_name(model) / safe_name(revision_label(revision)) / safe_name(task) / f"{key}.parquet"


def samples_path(run_dir: Path, model: str, revision: str | None, task: str) -> Path:
    return run_dir / "samples" / safe_name(model) / safe_name(revision_label(revision)) / f"{safe_name(task)}.parquet"


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


def shard_file(run_dir: Path, shard: Shard) -> Path:
    model = shard.model_revision
    return requests_path(run_dir, model.name, model.revision, shard.task, shard.key)


def written_shards(run_dir: Path | None, shards: Iterable[Shard]) -> set[str]:
    """Keys of the shards whose Parquet file is already in the run folder: they are reused."""
    if run_dir is None or not Path(run_dir).is_dir():
        return set()
    return {s.key for s in shards if shard_file(run_dir, s).exists()}


def write_shard(run_dir: Path, shard: Shard, rows: list[dict]) -> None:
    """The shard's request rows, with their ids, to its own Parquet file (atomically)."""
    model = shard.model_revision
    full = []
    for inst, row in zip(shard.instances, rows, strict=True):
        full.append({"model": model.name, "revision": model.revision,
                     "task": shard.task, "doc_id": inst.doc_id, "request_idx": inst.idx,
                     "request_type": inst.request_type, "shard": shard.key, **row})
    write_atomic(table_from_rows(full, REQUESTS_SCHEMA), shard_file(run_dir, shard))
