"""From a run's Parquet tables to the (size, value) series that get fitted, with resampled copies.

A series is one task, metric and filter over (model, revision) points: value from scores.parquet,
size = n_params_nonembedding, tokens = tokens_trained, the training run from finished_schedule
(`run_names`), plus (R, M) bootstrap values drawn from the per-document samples. The draws are
paired (the same documents for every model), and the seed depends only on the run's seed and the
task, so metrics of a task measured on the same documents (a discrete metric and its continuous
twins) get identical resamples.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analysis.bootstrap import DocMatrix, paired_doc_bootstrap
from harness.checkpoint import revision_label, training_order
from harness.results.schemas import sample_column

# Rolling-perplexity metrics are ratios of sums over documents (lm-eval's bits_per_byte, the results
# stage's nll_per_token): -sum(target_loglik) / (scale * sum(denominator column)).
_RATIO_DENOM = {"bits_per_byte": ("n_bytes", math.log(2.0)), "nll_per_token": ("n_tokens", 1.0)}


@dataclass(frozen=True)
class Series:
    task: str
    metric: str
    filter: str
    models: tuple[str, ...]
    revisions: tuple[str, ...]  # "" where the run had none
    n: np.ndarray  # non-embedding parameters per point
    d: np.ndarray  # tokens trained per point (NaN when unknown)
    y: np.ndarray
    boot: np.ndarray | None  # (R, M) resampled values, None without per-document samples
    dropped: tuple[str, ...] = ()  # points left out (NaN value or size), named
    # The training run of each point (`run_names`): model@revision for a finished learning-rate schedule,
    # else the model name. Left out, every model name is one run (each revision a checkpoint of it).
    runs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.runs:
            object.__setattr__(self, "runs", tuple(self.models))
        if len(self.runs) != len(self.models):
            raise ValueError(f"{len(self.runs)} runs for {len(self.models)} points")

    @property
    def n_sizes(self) -> int:
        return int(np.unique(self.n).size)

    @property
    def ci_method(self) -> str:
        if self.boot is None:
            return "none"
        return f"paired document bootstrap (R={self.boot.shape[0]})"


def task_seed(seed: int, task: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(task.encode())) % (2**32)


def pick_filter(scores: pd.DataFrame, task: str, metric: str) -> str | None:
    """lm-eval may report a metric under several filters: prefer "none", else the first by name."""
    filters = sorted(scores.loc[(scores["task"] == task) & (scores["metric"] == metric), "filter"].astype(str).unique())
    if not filters:
        return None
    return "none" if "none" in filters else filters[0]


def metric_rows(scores: pd.DataFrame, task: str, metric: str, flt: str) -> pd.DataFrame:
    """The scores.parquet rows of (task, metric, filter), one per (model, revision)."""
    rows = scores[(scores["task"] == task) & (scores["metric"] == metric) & (scores["filter"].astype(str) == flt)]
    return rows.drop_duplicates(["model", "revision"], keep="last")  # a resumed run may repeat a shard


def run_names(rows: pd.DataFrame) -> tuple[str, ...]:
    """The training run of each scores row: `model@revision` when every revision of that model is a
    finished learning-rate schedule (finished_schedule True: each a run of its own, trained for exactly
    its tokens, as a WSD ladder's), else the model name. A model whose last revision is finished and
    the others not (Pythia, a cosine ladder) is one run: its earlier revisions are checkpoints of it.

    >>> run_names(pd.DataFrame({"model": ["a", "a", "b", "c", "c"],
    ...                         "revision": ["step1", "step2", "step1", "step1", "step2"],
    ...                         "finished_schedule": [True, True, None, False, True]}))
    ('a@step1', 'a@step2', 'b', 'c', 'c')
    """
    flags = rows["finished_schedule"].tolist() if "finished_schedule" in rows.columns else [None] * len(rows)
    one_run = {model for model, flag in zip(rows["model"], flags) if flag is not True}
    return tuple(model if model in one_run else f"{model}@{revision_label(revision)}"
                 for model, revision in zip(rows["model"], rows["revision"]))


def final_revisions(rows: pd.DataFrame) -> pd.DataFrame:
    """One checkpoint per model, where the sizes are compared: at the largest token count that every
    model has a checkpoint at, when there is one; else each model's last checkpoint in training order
    (`harness.checkpoint.training_order`: tokens trained, then step, then name), the rule the plan
    uses for `revisions: final`. A ladder whose sizes end at different budgets (an IsoFLOP design,
    zoo/README.md) is so compared at equal tokens, not each size at its own longest run; a ladder
    whose sizes share their last budget (Pythia) gets its last checkpoints either way."""
    def rank(r):
        tokens = None if pd.isna(r["tokens_trained"]) else int(r["tokens_trained"])
        return training_order(r["revision"], tokens)

    tokens = pd.to_numeric(rows["tokens_trained"], errors="coerce")
    shared = set.intersection(*(set(t.dropna()) for _, t in tokens.groupby(rows["model"]))) if len(rows) else set()
    if shared and tokens.notna().all():
        rows = rows[tokens == max(shared)]
    keep = [max(group.index, key=lambda i: rank(group.loc[i])) for _, group in rows.groupby("model", sort=True)]
    return rows.loc[keep]


def build_series(scores: pd.DataFrame, samples: pd.DataFrame | None, task: str, metric: str, *,
                 final_only: bool, n_boot: int, seed: int) -> Series | None:
    """The series for (task, metric); None when scores.parquet has no such rows."""
    flt = pick_filter(scores, task, metric)
    if flt is None:
        return None
    rows = metric_rows(scores, task, metric, flt)
    if final_only:
        rows = final_revisions(rows)
    rows = rows.sort_values(["n_params_nonembedding", "model", "revision"])
    bad = ~np.isfinite(rows["value"].to_numpy(float)) | ~(rows["n_params_nonembedding"].to_numpy(float) > 0)
    dropped = tuple(f"{m}@{r}" if r else m for m, r in zip(rows["model"][bad], rows["revision"][bad]))
    rows = rows[~bad]
    keys = list(zip(rows["model"], rows["revision"]))
    boot = None
    if samples is not None and n_boot > 0 and len(keys) > 0:
        docs = doc_matrix(samples, task, metric, keys, flt)
        if docs is not None:
            boot = paired_doc_bootstrap(docs, n_boot, task_seed(seed, task), base=rows["value"].to_numpy(float))
    return Series(task=task, metric=metric, filter=flt, models=tuple(rows["model"]), revisions=tuple(rows["revision"]),
                  n=rows["n_params_nonembedding"].to_numpy(float), d=rows["tokens_trained"].to_numpy(float),
                  y=rows["value"].to_numpy(float), boot=boot, dropped=dropped, runs=run_names(rows))


def doc_matrix(samples: pd.DataFrame, task: str, metric: str, keys: list[tuple[str, str]],
               flt: str = "none") -> DocMatrix | None:
    """Per-document numerators/denominators for the given (model, revision) keys on shared docs.

    `flt` is the filter the series' values come from; it picks the sample column (`sample_column`).
    Ratio metrics are rebuilt from target_loglik and token/byte counts, which have no filter. None
    when a column is missing, a key has no rows, or fewer than 2 documents are shared by all keys.
    """
    sub = samples[samples["task"] == task]
    if metric in _RATIO_DENOM:
        denom_col, scale = _RATIO_DENOM[metric]
        value_col = None
        cols = ["target_loglik", denom_col]
    else:
        denom_col, scale = None, 1.0
        value_col = sample_column(metric, flt)
        cols = [value_col]
    if any(c not in sub.columns for c in cols):
        return None
    sub = sub.dropna(subset=cols)
    tables = []
    for model, revision in keys:
        part = sub[(sub["model"] == model) & (sub["revision"] == revision)].drop_duplicates("doc_id")
        if part.empty:
            return None
        tables.append(part.set_index("doc_id")[cols])
    shared = sorted(set.intersection(*(set(t.index) for t in tables)))
    if len(shared) < 2:
        return None
    if denom_col is None:
        numer = np.stack([t.loc[shared, value_col].to_numpy(float) for t in tables])
        denom = np.ones_like(numer)
    else:
        numer = np.stack([-t.loc[shared, "target_loglik"].to_numpy(float) for t in tables])
        denom = np.stack([t.loc[shared, denom_col].to_numpy(float) * scale for t in tables])
        if np.any(denom.sum(1) <= 0):
            return None
    return DocMatrix(numer=numer, denom=denom, doc_ids=tuple(int(i) for i in shared))
