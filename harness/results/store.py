"""Every write and read of a run folder: atomic files, the paths of shards and samples, reuse.

Readers of a run folder see a file whole or not at all: every file is written through
`harness.files.atomic_path` (a `.tmp-*` name in its folder, which no reader here ever reads, then a
rename; modes from the umask). A missing revision
is spelled once (`revision_label`), so the paths written by the engine and read by the results
stage can never disagree.

A shard file counts as written only when it reads as Parquet and its metadata names its shard and
its number of rows (`written_shards`); anything else is recomputed. Every samples file of a folder
has one schema (`write_samples`), so the folder reads as one table with pandas or DuckDB.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from harness.checkpoint import revision_label
from harness.errors import first_line
from harness.files import atomic_path, is_temp, safe_name
from harness.results.schemas import REQUESTS_SCHEMA, SAMPLES_FIXED

if TYPE_CHECKING:  # a type only: importing the plan would load lm-eval for every reader
    import pandas as pd

    from harness.plan.shards import Shard

SHARD_KEY = b"harness.shard_key"  # Parquet metadata of a shard file: which shard, how many rows
SHARD_ROWS = b"harness.rows"
# Shard files of earlier sweeps that the current one does not plan: kept (a sweep that returns to
# them reuses them) but outside requests/, so that nothing a user reads holds them.
RETIRED = ".retired"
# What `harness analyze` derives from scores.parquet and samples/: stale once those change.
DERIVED = ("fits.parquet", "bands.parquet", "backtest.parquet", "predictions.parquet", "report.md", "plots")


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
        return _concat(parquet_files(path))
    return pq.read_table(path).to_pandas()


def parquet_files(folder: Path) -> list[Path]:
    """The Parquet files under `folder`, in path order, temporary files left out."""
    return sorted(p for p in Path(folder).rglob("*.parquet") if not is_temp(p)) if Path(folder).is_dir() else []


def _concat(files: Iterable[Path]) -> pd.DataFrame:
    import pandas as pd

    frames = [pq.read_table(f).to_pandas() for f in files]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def table_from_rows(rows: Iterable[Mapping], schema: pa.Schema) -> pa.Table:
    """Rows -> table with exactly `schema` (validation on write: a missing column is an error)."""
    rows = list(rows)
    columns = {f.name: [r[f.name] for r in rows] for f in schema}
    return pa.table(columns, schema=schema)


def samples_schema(columns: Iterable[str]) -> pa.Schema:
    """SAMPLES_FIXED, then one float64 column per metric column in name order: the stable order of
    every samples file of a folder."""
    extra = sorted(set(columns) - set(SAMPLES_FIXED.names))
    return pa.schema(list(SAMPLES_FIXED) + [(name, pa.float64()) for name in extra])


def metric_columns(schema: pa.Schema) -> set[str]:
    """The per-document metric columns of a samples table (all but the fixed ones)."""
    return set(schema.names) - set(SAMPLES_FIXED.names)


def samples_table(rows: list[Mapping]) -> pa.Table:
    """Fixed sample columns plus one float64 column per scalar metric seen in the rows (null where a
    row has no value). Written through `write_samples`, which gives it the folder's columns."""
    schema = samples_schema({k for r in rows for k in r})
    return pa.table({f.name: [r.get(f.name) for r in rows] for f in schema}, schema=schema)


def conform_samples(table: pa.Table, columns: Iterable[str]) -> pa.Table:
    """`table` with `samples_schema(columns)`: the metric columns it lacks added as nulls, all in
    schema order. A column of `table` outside `columns` is an error, never dropped silently."""
    schema = samples_schema(columns)
    lost = metric_columns(table.schema) - set(schema.names)
    if lost:
        raise ValueError(f"samples columns {sorted(lost)} are not in the folder's samples schema")
    arrays = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
              for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def same_samples(a: pa.Table, b: pa.Table) -> bool:
    """Equal documents and values, whatever metric columns either lacks (those hold nulls)."""
    columns = metric_columns(a.schema) | metric_columns(b.schema)
    return conform_samples(a, columns).equals(conform_samples(b, columns))


def write_samples(run_dir: Path, tables: Mapping[Path, pa.Table]) -> None:
    """Write samples files so that every samples file under `run_dir` has one schema.

    The folder's metric columns are those of the new tables and of the samples files already there
    (files written by an earlier finalize or import: only their footers are read). The new tables
    are written with all of them; a file already there that lacks one is rewritten with it (nulls).
    Readers that take the first file's schema for all (pandas on the folder, DuckDB's glob) then
    lose nothing.
    """
    existing = {path: pq.read_schema(path) for path in parquet_files(Path(run_dir) / "samples")
                if path not in tables}
    columns = set().union(*(metric_columns(t.schema) for t in tables.values()),
                          *(metric_columns(schema) for schema in existing.values()))
    schema = samples_schema(columns)
    for path, table in tables.items():
        write_atomic(conform_samples(table, columns), path)
    for path, old in existing.items():
        if not old.remove_metadata().equals(schema):
            write_atomic(conform_samples(pq.read_table(path), columns), path)


def shard_file(run_dir: Path, shard: Shard) -> Path:
    model = shard.model_revision
    return requests_path(run_dir, model.name, model.revision, shard.task, shard.key)


MISSING = "missing"
UNSTAMPED = "carries no shard metadata (an older harness wrote it)"


def shard_problem(path: Path, shard: Shard) -> str | None:
    """Why the file at `path` does not hold `shard` whole (None: it does). Only the footer is read.

    It must read as Parquet, and its metadata must name the shard's key and row count and agree
    with the rows it holds: a file cut short, garbled, replaced by another shard's or written by an
    older harness (no such metadata: UNSTAMPED) is recomputed, never trusted.
    """
    if not path.is_file():
        return MISSING
    try:
        meta = pq.read_metadata(path)
    except (OSError, pa.ArrowException) as exc:
        return f"does not read as Parquet ({first_line(exc)})"
    stamp = meta.metadata or {}
    if SHARD_KEY not in stamp:
        return UNSTAMPED
    found = (stamp[SHARD_KEY].decode(), stamp.get(SHARD_ROWS, b"?").decode(), meta.num_rows)
    if found != (shard.key, str(shard.n_requests), shard.n_requests):
        return (f"does not hold shard {shard.key} whole (its metadata names shard {found[0]} of {found[1]} "
                f"rows; it holds {found[2]}, the plan {shard.n_requests})")
    return None


def written_shards(run_dir: Path | None, shards: Iterable[Shard], stream=None) -> set[str]:
    """Keys of the shards whose file in the run folder holds them whole (`shard_problem`): they are
    reused. A file there that does not is named in one line on `stream` and will be recomputed;
    files of an older harness get one line for all (a whole old run would be thousands)."""
    if run_dir is None or not Path(run_dir).is_dir():
        return set()
    stream = stream or sys.stderr
    done, unstamped = set(), []
    for shard in shards:
        path = shard_file(run_dir, shard)
        problem = shard_problem(path, shard)
        if problem is None:
            done.add(shard.key)
        elif problem == UNSTAMPED:
            unstamped.append(path)
        elif problem != MISSING:
            print(f"harness: {path} {problem}; recomputing it", file=stream)
    if unstamped:
        print(f"harness: {len(unstamped)} shard file(s) carry no shard metadata (an older harness wrote them, "
              f"e.g. {unstamped[0]}); recomputing them", file=stream)
    return done


def read_shards(run_dir: Path, shards: Iterable[Shard]) -> pd.DataFrame:
    """The request rows of the shards whose files hold them whole (`shard_problem`), as one frame."""
    return _concat(shard_file(run_dir, s) for s in shards if shard_problem(shard_file(run_dir, s), s) is None)


def write_shard(run_dir: Path, shard: Shard, rows: list[dict]) -> None:
    """The shard's request rows, with their ids, to its own Parquet file (atomically), its metadata
    naming the shard and its row count (what `written_shards` checks before reusing it)."""
    model = shard.model_revision
    full = []
    for inst, row in zip(shard.instances, rows, strict=True):
        full.append({"model": model.name, "revision": model.revision,
                     "task": shard.task, "doc_id": inst.doc_id, "request_idx": inst.idx,
                     "request_type": inst.request_type, "shard": shard.key, **row})
    table = table_from_rows(full, REQUESTS_SCHEMA)
    stamp = {SHARD_KEY: shard.key.encode(), SHARD_ROWS: str(shard.n_requests).encode()}
    write_atomic(table.replace_schema_metadata(stamp), shard_file(run_dir, shard))


def _move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)  # one file system: a rename, so a reader sees it here or there


def _prune_empty(folder: Path) -> None:
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            sub.rmdir()
        except OSError:
            pass  # not empty


def remove_empty_folder(folder: Path) -> None:
    """Remove `folder` if nothing but empty folders is left in it (a run refused before writing)."""
    folder = Path(folder)
    if folder.is_dir():
        _prune_empty(folder)
        try:
            folder.rmdir()
        except OSError:
            pass  # something is in it: not ours to remove


def retire_unplanned(run_dir: Path, shards: Iterable[Shard]) -> int:
    """Make requests/ hold the planned shards' files only, so that a run folder grows: a shard
    file there that the plan does not name (a model, task or limit no longer in the sweep) moves
    to RUN_DIR/.retired/requests/ at the same relative path. Returns how many moved."""
    run_dir = Path(run_dir)
    planned = {shard_file(run_dir, s) for s in shards}
    retired = 0
    for path in parquet_files(run_dir / "requests"):
        if path not in planned:
            _move(path, run_dir / RETIRED / path.relative_to(run_dir))
            retired += 1
    if retired:
        _prune_empty(run_dir / "requests")
    return retired


def restore_retired(run_dir: Path, shards: Iterable[Shard]) -> int:
    """Bring back from RUN_DIR/.retired/ the files of these planned shards (an earlier sweep into
    the folder retired them); they are then checked like any other. Returns how many came back."""
    run_dir = Path(run_dir)
    if not (run_dir / RETIRED).is_dir():
        return 0
    restored = 0
    for shard in shards:
        path = shard_file(run_dir, shard)
        kept = run_dir / RETIRED / path.relative_to(run_dir)
        if not path.exists() and kept.is_file():
            _move(kept, path)
            restored += 1
    if restored:
        _prune_empty(run_dir / RETIRED)
    return restored


def remove_samples_except(run_dir: Path, keep: Iterable[Path]) -> int:
    """Delete the samples files that the current scores do not describe (a model or task left the
    sweep, or its shards are incomplete now); they are derived from shard files, never the only copy."""
    keep = {Path(p) for p in keep}
    gone = 0
    for path in parquet_files(Path(run_dir) / "samples"):
        if path not in keep:
            path.unlink(missing_ok=True)
            gone += 1
    if gone:
        _prune_empty(Path(run_dir) / "samples")
    return gone


def remove_derived(run_dir: Path) -> None:
    """Delete what an analysis derived from older scores (it is rerun from the new ones)."""
    for name in DERIVED:
        path = Path(run_dir) / name
        if path.is_dir():
            for item in path.glob("*.png"):
                item.unlink(missing_ok=True)
        else:
            path.unlink(missing_ok=True)
