"""From the request rows of a run to its samples and scores: the last step before the analysis.

A (model revision, task) is scored only when every one of its planned shards is written: a run
with failed shards never writes a partial score. Parameter counts measured by the workers win
over the sweep's stated ones; tokens trained come from the sweep or the checkpoint, and whether a
revision is a finished learning-rate schedule from the checkpoint (harness.json, or a known family).

Only shard files that hold their shard whole are read (`store.read_shards`), and the samples of
all complete groups are written together at the end (`store.write_samples`): every samples file of
the run then has the same columns, the union of the metric columns of every task. scores.parquet
and samples/ describe the current plan exactly: samples of groups it no longer scores are deleted,
and so is the analysis of the earlier scores.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from harness.checkpoint import revision_label, step_of
from harness.plan.shards import Plan
from harness.results.metrics import aggregate_group
from harness.results.schemas import SCORES_SCHEMA
from harness.results.store import (read_shards, remove_derived, remove_samples_except, samples_path, samples_table,
                                   table_from_rows, write_atomic, write_samples)

HEADLINE_METRICS = ("acc", "exact_match", "bits_per_byte")


def finalize(plan: Plan, run_dir: Path, measured: Mapping[str, dict]):
    """Write samples and scores.parquet; returns the scores as a DataFrame (None: no rows at all).

    `measured` maps a model revision's key to what its worker measured (`n_params`,
    `n_params_nonembedding`), as the manifest records it.
    """
    requests = read_shards(run_dir, plan.shards)
    if requests.empty:
        remove_samples_except(run_dir, ())
        _write_scores(table_from_rows([], SCORES_SCHEMA), run_dir)
        return None
    expected: dict[tuple, set] = defaultdict(set)
    for shard in plan.shards:
        expected[(shard.model_revision.key, shard.task)].add(shard.key)
    models = {m.key: m for m in plan.model_revisions}
    score_rows, samples = [], {}
    for (key, task), group in _groups(requests, models):
        if set(group["shard"].unique()) != expected.get((key, task), set()):
            continue  # incomplete: some shards failed; no partial score is ever written
        model = models[key]
        result = aggregate_group(plan.tasks[task], group.to_dict("records"), plan.sweep.bootstrap_iters)
        ids = {"model": model.name, "revision": model.revision, "task": task}
        samples[samples_path(run_dir, model.name, model.revision, task)] = \
            samples_table([{**ids, **s} for s in result.samples])
        counts = measured.get(key, {})
        for row in result.metrics:
            score_rows.append({**ids, **row,
                               "n_params": counts.get("n_params") or model.spec.n_params,
                               "n_params_nonembedding": counts.get("n_params_nonembedding")
                               or model.spec.n_params_nonembedding,
                               "tokens_trained": model.tokens_trained,
                               "finished_schedule": model.finished_schedule})
    remove_samples_except(run_dir, samples)  # before writing: their columns must not outlive them
    write_samples(run_dir, samples)  # all at once: the columns of every task are known here
    table = table_from_rows(score_rows, SCORES_SCHEMA)
    _write_scores(table, run_dir)
    return table.to_pandas()


def _write_scores(table, run_dir: Path) -> None:
    """scores.parquet; an analysis of other scores than these is deleted (`harness analyze` redoes it),
    one of the same scores stays."""
    path = run_dir / "scores.parquet"
    try:
        same = path.is_file() and _as_scores_schema(pq.read_table(path)).equals(table)
    except (OSError, pa.ArrowException):
        same = False
    if not same:
        remove_derived(run_dir)
    write_atomic(table, path)


def _as_scores_schema(table: pa.Table) -> pa.Table:
    """A scores table read back, with the trailing columns an older harness did not write (such as
    finished_schedule) added as nulls: the same scores then compare equal to those written now."""
    for field in SCORES_SCHEMA:
        if field.name not in table.column_names:
            table = table.append_column(field, pa.nulls(len(table), field.type))
    return table


def _groups(requests, models: Mapping) -> Iterator:
    keys = requests["model"] + "@" + requests["revision"].map(revision_label)
    for (key, task), group in requests.assign(_key=keys).groupby(["_key", "task"], sort=True):
        if key in models:
            yield (key, task), group


def headline_table(scores) -> str:
    """The headline metric of each task per model revision, revisions in training order."""
    if scores is None or scores.empty:
        return "harness: no complete (model, task) results to score"
    rows = scores[scores["metric"].isin(HEADLINE_METRICS)].copy()
    if rows.empty:
        rows = scores.copy()
    rows["model"] = rows["model"] + "@" + rows["revision"].map(revision_label)
    suffix = rows["filter"].map(lambda f: "" if f == "none" else f",{f}")
    rows["col"] = rows["task"] + ":" + rows["metric"] + suffix
    table = rows.pivot_table(index="model", columns="col", values="value", aggfunc="first")

    def order(key: str) -> tuple:  # step128 before step1024, not string order
        name, revision = key.rsplit("@", 1)
        return name, step_of(revision) or 0, key

    table = table.loc[sorted(table.index, key=order)]
    table.columns.name = None
    return table.to_string(na_rep="-", float_format=lambda v: f"{v:.4g}")
