"""lm-eval `--log_samples` files (`samples_<task>_<timestamp>.jsonl`) -> per-document rows.

One JSON object a line per (document, filter): `doc_id`, `doc`, `target`, `arguments`, `resps`,
`filtered_resps`, `filter`, `metrics` (the names) and each metric's value under its own name. Lines of
one document under several filters become one row, a column per scalar metric and filter
(`results.schemas.sample_column`), plus the continuous twins (`harness.ingest.twins`).

The lines name neither the model nor the task, so (the rule):
* the task is the file name's `<task>` (lm-eval writes `samples_<task>_<timestamp>.jsonl`);
* model, revision and the task's config come from the results file of the same evaluation: the
  `results_<timestamp>.json` with the same timestamp in the same folder, where lm-eval writes both.
  A samples file without that sibling is refused (copy the results file back beside it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.ingest.lmeval_json import lmeval_version, model_identity, stated_sizes
from harness.ingest.records import Parsed, SampleSet, ScoreRecord
from harness.ingest.twins import TaskConfig, document_twins, twin_metrics
from harness.results.schemas import sample_column

_NAME = re.compile(r"^samples_(?P<task>.+)_(?P<stamp>\d{4}-\d{2}-\d{2}T[0-9.\-]+)\.jsonl$")
SAMPLE_KEYS = {"doc_id", "resps", "filter"}


def is_sample_line(obj: Any) -> bool:
    return isinstance(obj, dict) and SAMPLE_KEYS <= set(obj)


def sibling_results(path: Path) -> tuple[str, Path]:
    """(task, results file) of a samples file, by the rule in the module docstring."""
    match = _NAME.match(path.name)
    if match is None:
        raise UserError(f"{path}: a samples file must keep lm-eval's name samples_<task>_<timestamp>.jsonl "
                        "(the task and its results file are found by it); rename it back")
    sibling = path.with_name(f"results_{match['stamp']}.json")
    if not sibling.is_file():
        raise UserError(f"{path}: its results file {sibling.name} is not beside it (model and revision come "
                        "from there); copy it back into the same folder")
    return match["task"], sibling


def parse_samples(path: Path, lines: list[dict]) -> Parsed:
    """Rows of one samples file; the twins' means also become score rows (as a harness run has them)."""
    task, sibling = sibling_results(path)
    results = _read_results(sibling)
    model, revision = model_identity(sibling, results)
    config = TaskConfig.of((results.get("configs") or {}).get(task))
    rows = document_rows(lines, config)
    stated = stated_sizes(results)
    scores = tuple(ScoreRecord(model, revision, task, m["metric"], m["filter"], m["value"], m["stderr"], m["n"], stated)
                   for m in twin_metrics(config.output_type, rows))
    rows = tuple({"model": model, "revision": revision, "task": task, **row} for row in rows)
    return Parsed(path, "lm-eval-samples", scores, (SampleSet(model, revision, task, rows),),
                  (f"model from {sibling.name}",))


def document_rows(lines: list[dict], config: TaskConfig) -> list[dict[str, Any]]:
    """One row per document, in doc_id order: scalar metrics under every filter, then the twins."""
    by_doc: dict[int, dict[str, Any]] = {}
    for line in lines:
        doc_id = int(line["doc_id"])
        row = by_doc.get(doc_id)
        if row is None:
            row = by_doc[doc_id] = {"doc_id": doc_id, **document_twins(line, config)}
        filt = str(line.get("filter") or "none")
        for metric in line.get("metrics") or []:
            value = line.get(metric)
            if isinstance(value, (bool, int, float)):  # lists (perplexity pairs) are not per-document scores
                row[sample_column(metric, filt)] = float(value)
    return [by_doc[d] for d in sorted(by_doc)]


def _read_results(path: Path) -> Mapping:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read it as JSON ({exc}); samples need their results file") from None
    if lmeval_version(data) != "0.4":
        raise UserError(f"{path}: not an lm-eval 0.4 results file, which its samples file needs; copy back "
                        "the results_<timestamp>.json lm-eval wrote with it")
    return data
