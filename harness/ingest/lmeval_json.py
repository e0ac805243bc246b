"""lm-eval result JSON files (`results_<timestamp>.json`, or the older single-file form) -> score rows.

Two layouts are read (`lmeval_version` tells them apart by content):
* 0.4: `results: {task: {"acc,none": v, "acc_stderr,none": s, "alias": ...}}`, `n-samples:
  {task: {"original": N, "effective": N}}`, `configs` (each task's YAML, with its `output_type`),
  `config.model_args` (a string `pretrained=...,revision=...` or a dict) and `config.model_num_parameters`.
* 0.3: `results: {task: {"acc": v, "acc_stderr": s}}`, `versions`, `config.model_args`. It has no
  filters: every row's filter is "none". It has no document counts: `n` stays null.

Group rows are skipped: a 0.4 group (`groups`, or a non-empty `group_subtasks` entry) is an aggregate of
its subtasks, whose own rows are imported, and `harness run` never writes group rows either, so a
folder never holds both a group and its parts. Entries that are not metrics (`alias`, `name`,
`sample_len`) are skipped; an lm-eval stderr of "N/A" becomes null (NaN when read).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.ingest.records import Parsed, ScoreRecord, Sizes, as_count, as_float, revision_of

_STDERR = "_stderr"


def lmeval_version(data: Any) -> str | None:
    """"0.4", "0.3", or None when `data` is not an lm-eval result: 0.4 keys metrics `metric,filter`.

    >>> lmeval_version({"results": {"piqa": {"acc,none": 0.6}}, "configs": {}})
    '0.4'
    >>> lmeval_version({"results": {"piqa": {"acc": 0.6}}, "versions": {"piqa": 0}})
    '0.3'
    """
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or not data["results"]:
        return None
    if not all(isinstance(v, dict) for v in data["results"].values()):
        return None
    keys = [k for task in data["results"].values() for k in task]
    if any("," in k for k in keys) or "configs" in data or "n-samples" in data:
        return "0.4"
    return "0.3" if "versions" in data or "config" in data else None


def model_args(config: Any) -> dict[str, str]:
    """`config.model_args` as a dict: lm-eval writes `k=v,k=v` (0.3, 0.4 CLI) or a mapping (0.4 API).

    >>> model_args({"model_args": "use_accelerate=True,pretrained=EleutherAI/pythia-v1.1-70m,revision=step0"})
    {'use_accelerate': 'True', 'pretrained': 'EleutherAI/pythia-v1.1-70m', 'revision': 'step0'}
    """
    raw = config.get("model_args") if isinstance(config, dict) else None
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items() if v is not None}
    pairs = (part.split("=", 1) for part in str(raw or "").split(",") if "=" in part)
    return {k.strip(): v.strip() for k, v in pairs}


def model_identity(path: Path, data: Mapping) -> tuple[str, str]:
    """(model, revision) of a result file: `pretrained=` of model_args (else the 0.4 `model_name`), and
    `revision=` (else "main"). The name is kept as the file spells it, so it stays stable across imports."""
    config = data.get("config") or {}
    args = model_args(config)
    model = args.get("pretrained") or args.get("model") or data.get("model_name")
    if not model:
        raise UserError(f"{path}: cannot tell which model this is (no pretrained= in config.model_args, no "
                        "model_name); write it in, or import a CSV table with a model column")
    return str(model), revision_of(args.get("revision"))


def parse_results(path: Path, data: Mapping, version: str) -> Parsed:
    """The score rows of one lm-eval result file (0.3 or 0.4, as `lmeval_version` said)."""
    model, revision = model_identity(path, data)
    stated = stated_sizes(data)
    groups = group_names(data)
    counts = data.get("n-samples") or {}
    rows: list[ScoreRecord] = []
    for task, metrics in data["results"].items():
        if task in groups:
            continue
        n = as_count((counts.get(task) or {}).get("effective")) if isinstance(counts.get(task), dict) else None
        for metric, filt, value, stderr in _metric_values(metrics, version):
            rows.append(ScoreRecord(model, revision, task, metric, filt, value, stderr, n, stated))
    notes = (f"skipped {len(groups & set(data['results']))} group row(s)",) if groups & set(data["results"]) else ()
    return Parsed(path, f"lm-eval-{version}", tuple(rows), (), notes)


def stated_sizes(data: Mapping) -> Sizes:
    """What a 0.4 file says of the model's size: HFLM records every parameter (embeddings included)."""
    return Sizes(n_params=as_count((data.get("config") or {}).get("model_num_parameters")))


def group_names(data: Mapping) -> set[str]:
    """Tasks of a 0.4 file that are groups of others (0.3 files have none)."""
    subtasks = data.get("group_subtasks") or {}
    return set(data.get("groups") or {}) | {name for name, parts in subtasks.items() if parts}


def _metric_values(metrics: Mapping, version: str) -> list[tuple[str, str, float, float | None]]:
    """(metric, filter, value, stderr) for every numeric metric of one task, in the file's order."""
    out = []
    for key, value in metrics.items():
        name, filt = key.split(",", 1) if version == "0.4" and "," in key else (key, "none")
        if version == "0.4" and "," not in key:
            continue  # `alias`, `name`, `sample_len`: about the task, not a metric
        number = as_float(value)
        if name.endswith(_STDERR) or number is None or isinstance(value, str):
            continue
        stderr_key = f"{name}{_STDERR},{filt}" if version == "0.4" else f"{name}{_STDERR}"
        out.append((name, filt, number, as_float(metrics.get(stderr_key))))
    return out
