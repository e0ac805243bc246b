"""The run folder an import writes: what may be imported into, what is there, and the writing itself.

The folder gets the contract every run folder has (`harness.results.schemas`): scores.parquet with
exactly SCORES_SCHEMA, samples/<model>/<revision>/<task>.parquet where per-document rows exist (all with
one schema, that of every samples file in the folder, earlier imports' included: `store.write_samples`),
and manifest.json, each written atomically by the results store. Nothing is written until every source
has been read and checked (`harness.ingest.importer`).

Imports and runs are not mixed in one folder, either way round:
* an import refuses a folder whose manifest is not an import's (a `harness run` folder), and a folder
  with a scores.parquet but no manifest (its origin is unknown);
* the import's manifest says `kind: import`, so `harness run --out` on an import folder refuses it too
  ("holds results of `harness import`").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from harness.errors import UserError
from harness.ingest.records import Parsed, SampleSet, ScoreRecord
from harness.ingest.table import parse_table
from harness.results.manifest import MANIFEST, package_versions, read_manifest, write_manifest
from harness.results.schemas import SCORES_SCHEMA
from harness.results.store import (same_samples, samples_path, samples_table, table_from_rows, write_atomic,
                                   write_samples)

KIND = "import"
SCORES = "scores.parquet"


@dataclass(frozen=True)
class Folder:
    """An import's target as found: its manifest (None when new) and the score rows it holds."""

    path: Path
    manifest: Mapping[str, Any] | None
    scores: tuple[ScoreRecord, ...]


def open_folder(path: Path) -> Folder:
    """The folder to import into, refused (UserError) when an import may not write there."""
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file; pass a folder")
    manifest = read_manifest(path) if path.is_dir() else None
    if (path / MANIFEST).is_file() and (manifest is None or manifest.get("kind") != KIND):
        raise UserError(f"--out {path} holds a run written by `harness run` (its {MANIFEST} says so); imports "
                        "and runs are not mixed: pass a new folder")
    if manifest is None and (path / SCORES).exists():
        raise UserError(f"--out {path} holds a {SCORES} without an import manifest; pass a new folder (or import "
                        f"that {SCORES} into one as a table)")
    scores = parse_table(path / SCORES, "parquet").scores if (path / SCORES).is_file() else ()
    return Folder(path, manifest, scores)


def changed_samples(run_dir: Path, sets: Iterable[tuple[Path, SampleSet]]) -> list[tuple[Path, pa.Table]]:
    """(file, table) for each samples file to write; UserError where one already there differs.

    Two sources giving the same (model, revision, task) must agree too; an equal file is not rewritten.
    Equal means equal values: a metric column that one side lacks and the other holds as nulls (the
    folder's common schema, `store.write_samples`) is no difference.
    """
    planned: dict[Path, tuple[Path, pa.Table]] = {}
    for where, samples in sets:
        target = samples_path(run_dir, samples.model, samples.revision, samples.task)
        table = samples_table(list(samples.rows))
        if target in planned:
            if not same_samples(planned[target][1], table):
                raise UserError(f"{where}: documents of {samples.model}@{samples.revision} {samples.task} differ "
                                f"from those in {planned[target][0]}; drop one of the two")
            continue
        if target.is_file() and not same_samples(pq.read_table(target), table):
            raise UserError(f"{where}: documents of {samples.model}@{samples.revision} {samples.task} differ from "
                            f"{target}, imported before; import into a new folder")
        planned[target] = (where, table)
    return [(target, table) for target, (_, table) in planned.items() if not target.is_file()]


def write_folder(folder: Folder, rows: Iterable[Mapping], samples: list[tuple[Path, pa.Table]],
                 sources: list[dict]) -> None:
    """Samples first, then scores.parquet, then the manifest that indexes them."""
    write_samples(folder.path, dict(samples))
    write_atomic(table_from_rows(rows, SCORES_SCHEMA), folder.path / SCORES)
    write_manifest(folder.path, import_manifest(folder.manifest, sources))


def source_entry(parsed: Parsed) -> dict[str, Any]:
    """The manifest's record of one source file: where, which bytes, what it was read as, what it gave."""
    return {"path": str(parsed.path.resolve()), "sha256": hashlib.sha256(parsed.path.read_bytes()).hexdigest(),
            "format": parsed.format, "score_rows": len(parsed.scores),
            "sample_rows": sum(len(s.rows) for s in parsed.samples), "notes": list(parsed.notes)}


def import_manifest(previous: Mapping[str, Any] | None, sources: list[dict]) -> dict[str, Any]:
    """The previous import manifest with this import's new sources added (a source already listed with
    the same bytes keeps its entry, so re-importing it changes only `updated`)."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    manifest = dict(previous or {"kind": KIND, "created": now, "sources": []})
    # `kind` is what makes `harness run` refuse to write into an import folder.
    manifest.update(kind=KIND, sweep={"source": "harness import"},
                    versions=package_versions(), updated=now)
    listed = {(s["path"], s["sha256"]) for s in manifest["sources"]}
    new = [dict(s, imported=now) for s in sources if (s["path"], s["sha256"]) not in listed]
    manifest["sources"] = list(manifest["sources"]) + new
    return json.loads(json.dumps(manifest))
