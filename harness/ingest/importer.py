"""`harness import`: read every source, check everything, then write the run folder in one go.

The order is the guarantee: sources are expanded and read (`detect`), sizes resolved (`sizes`), rows
merged with the folder's (`merge`) and samples compared with the folder's (`folder.changed_samples`)
before the first byte is written, so any UserError (a file that is no result, a model of unknown size,
a conflicting duplicate) leaves the folder exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.ingest.detect import expand, read_source
from harness.ingest.folder import SCORES, changed_samples, open_folder, source_entry, write_folder
from harness.ingest.merge import merge_rows, score_row
from harness.ingest.meta import load_meta
from harness.ingest.records import Parsed
from harness.ingest.sizes import check_folder_sizes, missing_nonembedding, resolve_sizes
from harness.results.lock import run_lock
from harness.results.store import remove_empty_folder


@dataclass(frozen=True)
class ImportSummary:
    run_dir: Path
    sources: int
    rows: int  # score rows in the folder now
    added: int  # of which new with this import
    model_revisions: int
    tasks: int
    samples_written: int  # samples files written by this import (equal ones already there are kept)


def import_sources(sources: Sequence[Path], run_dir: Path, meta: Path | None = None,
                   log: Callable[[str], None] = print) -> ImportSummary:
    """Import `sources` (files or folders) into `run_dir`; `log` gets one line per source file.

    The folder is held (`run_lock`, as `harness run` holds it) from reading what it holds to the
    last write, so that a run or another import cannot change it in between. A refused import into
    a new folder leaves no folder behind."""
    run_dir = Path(run_dir)
    open_folder(run_dir)  # refuse early, before reading any source, when the folder is not importable
    meta_models = load_meta(meta)
    parsed = []
    for path in expand(sources):
        parsed.append(read_source(path))
        log(progress_line(parsed[-1]))
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with run_lock(run_dir, stream=_LogStream(log)):
            return _write(parsed, open_folder(run_dir), meta_models, log)
    except BaseException:
        if created:
            remove_empty_folder(run_dir)
        raise


class _LogStream:
    """`log` as the stream the lock writes its one line to."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log

    def write(self, text: str) -> None:
        if text.strip():
            self.log(text.rstrip("\n"))

    def flush(self) -> None:
        pass


def _write(parsed: list[Parsed], folder, meta_models, log: Callable[[str], None]) -> ImportSummary:
    held = {rec.model_key: rec.stated for rec in folder.scores}
    sizes = resolve_sizes(parsed, meta_models, held)
    check_folder_sizes(sizes, held, folder.path / SCORES)
    for note in missing_nonembedding(sizes):
        log(f"harness: note: {note}")
    merged = merge_rows(((p.path, score_row(rec, sizes[rec.model_key])) for p in parsed for rec in p.scores),
                        ((folder.path / SCORES, score_row(rec, sizes.get(rec.model_key, rec.stated)))
                         for rec in folder.scores))
    samples = changed_samples(folder.path, ((p.path, s) for p in parsed for s in p.samples))
    write_folder(folder, merged.rows, samples, [source_entry(p) for p in parsed])
    return ImportSummary(folder.path, len(parsed), len(merged.rows), merged.added,
                         len({(r["model"], r["revision"]) for r in merged.rows}),
                         len({r["task"] for r in merged.rows}), len(samples))


def progress_line(parsed: Parsed) -> str:
    docs = sum(len(s.rows) for s in parsed.samples)
    models = sorted({f"{r.model}@{r.revision}" for r in parsed.scores} | {f"{s.model}@{s.revision}" for s in parsed.samples})
    parts = [f"{len(parsed.scores)} score rows"] + ([f"{docs} documents"] if docs else []) + list(parsed.notes)
    shown = models[0] if len(models) == 1 else f"{len(models)} model revisions"
    return f"harness: {parsed.path}: {parsed.format}, {shown}, {', '.join(parts)}"


def summary_line(summary: ImportSummary) -> str:
    return (f"harness: imported {summary.sources} files into {summary.run_dir}: {summary.rows} score rows "
            f"({summary.added} new), {summary.model_revisions} model revisions x {summary.tasks} tasks, "
            f"{summary.samples_written} samples files written")
