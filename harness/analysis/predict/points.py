"""One (task, metric) over a ladder, as the predictors see it.

Each model contributes its final checkpoint (training order, as `series.final_revisions`); the task's
loss, where the run has one, comes along at the same points and, for the two-step method, as
(loss, metric) pairs over every checkpoint of every model. Losses are extrapolated on the scale
where a power law in N is expected to hold: nats or bits, so a perplexity is taken as its log and
a log-likelihood is negated.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from harness.analysis.series import final_revisions, metric_rows, pick_filter

ACCURACY = frozenset({"acc", "acc_norm", "exact_match"})
# metric -> how it becomes a loss that falls with size as a power law
LOSS_SCALE = {"bits_per_byte": "identity", "nll_per_token": "identity", "brier": "identity",
              "edit_distance": "identity", "ppl": "log", "perplexity": "log", "word_perplexity": "log",
              "byte_perplexity": "log", "target_loglik": "negate"}
# The task loss the two-step method goes through, in order of preference: the gold answer's
# negative log-likelihood (Bhagia et al. 2024 use its bits per byte), else a perplexity's log.
TASK_LOSSES = ("target_loglik", "perplexity", "ppl", "bits_per_byte", "nll_per_token")


def to_loss(metric: str, y):
    y = np.asarray(y, dtype=float)
    scale = LOSS_SCALE[metric]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(y) if scale == "log" else -y if scale == "negate" else y


def from_loss(metric: str, z):
    z = np.asarray(z, dtype=float)
    scale = LOSS_SCALE[metric]
    return np.exp(z) if scale == "log" else -z if scale == "negate" else z


def kind_of(metric: str) -> str | None:
    """"accuracy", "loss" or None (a metric no predictor handles)."""
    return "accuracy" if metric in ACCURACY else "loss" if metric in LOSS_SCALE else None


@dataclass(frozen=True)
class Ladder:
    """Final checkpoints of one (task, metric), sorted by size, plus the task loss where known."""

    task: str
    metric: str
    filter: str
    models: tuple[str, ...]
    revisions: tuple[str, ...]
    n: np.ndarray  # non-embedding parameters
    d: np.ndarray  # tokens trained (NaN when unknown)
    y: np.ndarray  # the metric, on its own scale
    stderr: np.ndarray  # standard error from documents (NaN when unknown)
    chance: float | None = None  # accuracy of guessing, when known
    loss_metric: str | None = None
    loss: np.ndarray | None = None  # the task loss (loss scale) at the same points
    pair_n: np.ndarray | None = None  # every checkpoint with both metric and loss: size,
    pair_loss: np.ndarray | None = None  # task loss,
    pair_y: np.ndarray | None = None  # and metric

    @property
    def kind(self) -> str:
        return kind_of(self.metric) or "unknown"

    @property
    def sizes(self) -> np.ndarray:
        return np.unique(self.n)

    def below(self, size: float) -> Ladder:
        """The ladder without its sizes >= size (what a fit may see when `size` is held out)."""
        keep = self.n < size
        pairs = {}
        if self.pair_n is not None:
            pk = self.pair_n < size
            pairs = {"pair_n": self.pair_n[pk], "pair_loss": self.pair_loss[pk], "pair_y": self.pair_y[pk]}
        return replace(self, models=tuple(np.asarray(self.models, dtype=object)[keep]),
                       revisions=tuple(np.asarray(self.revisions, dtype=object)[keep]), n=self.n[keep],
                       d=self.d[keep], y=self.y[keep], stderr=self.stderr[keep],
                       loss=None if self.loss is None else self.loss[keep], **pairs)


def _rows(scores: pd.DataFrame, task: str, metric: str) -> tuple[pd.DataFrame, str] | None:
    flt = pick_filter(scores, task, metric)
    if flt is None:
        return None
    rows = metric_rows(scores, task, metric, flt)
    ok = np.isfinite(rows["value"].to_numpy(float)) & (rows["n_params_nonembedding"].to_numpy(float) > 0)
    return rows[ok], flt


def task_loss_metric(scores: pd.DataFrame, task: str) -> str | None:
    have = set(scores.loc[scores["task"] == task, "metric"])
    return next((m for m in TASK_LOSSES if m in have), None)


def ladder_for(scores: pd.DataFrame, task: str, metric: str, chance: float | None = None) -> Ladder | None:
    """The ladder of (task, metric) from a scores table (`analyze.load_scores`); None without rows."""
    got = _rows(scores, task, metric)
    if got is None or got[0].empty:
        return None
    rows, flt = got
    finals = final_revisions(rows).sort_values(["n_params_nonembedding", "model"])
    stderr = finals["stderr"].to_numpy(float) if "stderr" in finals else np.full(len(finals), np.nan)
    ladder = Ladder(task, metric, flt, tuple(finals["model"]), tuple(finals["revision"]),
                    finals["n_params_nonembedding"].to_numpy(float), finals["tokens_trained"].to_numpy(float),
                    finals["value"].to_numpy(float), stderr, chance)
    loss_metric = task_loss_metric(scores, task)
    if ladder.kind != "accuracy" or loss_metric is None:
        return ladder
    loss_rows = _rows(scores, task, loss_metric)[0]
    both = rows.merge(loss_rows[["model", "revision", "value"]], on=["model", "revision"], suffixes=("", "_loss"))
    keyed = dict(zip(zip(both["model"], both["revision"]), to_loss(loss_metric, both["value_loss"])))
    at_finals = np.array([keyed.get(k, np.nan) for k in zip(ladder.models, ladder.revisions)])
    return replace(ladder, loss_metric=loss_metric, loss=at_finals,
                   pair_n=both["n_params_nonembedding"].to_numpy(float),
                   pair_loss=to_loss(loss_metric, both["value_loss"]), pair_y=both["value"].to_numpy(float))
