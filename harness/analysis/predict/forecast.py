"""Every method's prediction at a target size, with its interval, one of them marked chosen.

The chosen method is the one with the smallest mean absolute forward-chaining error on the sizes
the fit sees (`intervals.fold_errors`), so the choice never looks at the target; ties and ladders
too short for any fold fall back to the order of `methods.METHODS`. The back-test holds out the
largest size: every fit, fold and choice sees only the smaller ones, and the prediction is compared
with the largest size's final checkpoint.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from harness.analysis.predict.intervals import (fold_errors, interval, point_noise, prediction_noise_var,
                                                working_noise)
from harness.analysis.predict.methods import METHODS
from harness.analysis.predict.points import Ladder, from_loss

PREDICTION_COLUMNS = ("task", "metric", "method", "chosen", "n_params", "tokens", "predicted", "pi_low", "pi_high",
                      "pi_level", "selection_error", "n_folds", "note")
BACKTEST_COLUMNS = ("task", "metric", "method", "chosen", "held_out_model", "held_out_revision", "n_params", "tokens",
                    "measured", "predicted", "pi_low", "pi_high", "error", "abs_error", "pi_level", "selection_error",
                    "n_folds", "note")


@dataclass(frozen=True)
class Prediction:
    """One method's prediction of (task, metric) at n_params (and tokens), on the metric's own scale."""

    task: str
    metric: str
    method: str
    chosen: bool
    n_params: float
    tokens: float
    predicted: float
    pi_low: float
    pi_high: float
    pi_level: float
    selection_error: float  # mean |forward-chaining error| on the fitted sizes (working scale)
    n_folds: int
    note: str = ""

    def row(self) -> dict:
        return asdict(self)


def _to_metric(ladder: Ladder, z: float) -> float:
    """Back to the metric's scale, inside its range: accuracy in [0, 1]; every loss here (bits,
    nats, log perplexity, -log p, Brier, edit distance) is >= 0 on its working scale."""
    if ladder.kind == "accuracy":
        return float(np.clip(z, 0.0, 1.0))
    return float(from_loss(ladder.metric, max(z, 0.0) if np.isfinite(z) else z))


def _ordered(ladder: Ladder, low: float, high: float) -> tuple[float, float]:
    low, high = _to_metric(ladder, low), _to_metric(ladder, high)
    return (min(low, high), max(low, high)) if np.isfinite(low) and np.isfinite(high) else (low, high)


def forecast(ladder: Ladder, targets: list[tuple[float, float]], level: float = 0.9) -> list[Prediction]:
    """Each applicable method's prediction at every (n, d) target from the whole ladder, one chosen
    per target; [] when no method can be fitted."""
    return [p for per_target in forecast_each(ladder, targets, level) for p in per_target]


def forecast_each(ladder: Ladder, targets: list[tuple[float, float]], level: float = 0.9) -> list[list[Prediction]]:
    """`forecast`'s predictions, one list per target in the targets' order. The fit and its
    forward-chaining folds are made once per method, whatever the number of targets."""
    own_noise = float(np.median(working_noise(ladder, point_noise(ladder)))) ** 2
    per_target: list[list[Prediction]] = [[] for _ in targets]
    for name, method in METHODS.get(ladder.kind, ()):
        try:
            predictor = method(ladder)
        except ValueError:
            continue  # e.g. no task loss for the two-step method: the others still predict
        folds = fold_errors(ladder, method)
        note = "" if folds.n_folds else "no interval: too few sizes to measure the law's error"
        for out, (n, d) in zip(per_target, targets):
            z = predictor(n, d)
            noise_var = prediction_noise_var(ladder, method, z, n, d) + own_noise
            low, high = interval(z, folds, noise_var, float(np.log(n / ladder.sizes.max())), level)
            out.append(Prediction(ladder.task, ladder.metric, name, False, float(n), float(d), _to_metric(ladder, z),
                                  *_ordered(ladder, low, high), level, folds.mean_abs, folds.n_folds, note))
    return [_mark_chosen(out) for out in per_target]


def _mark_chosen(predictions: list[Prediction]) -> list[Prediction]:
    if not predictions:
        return predictions
    scored = [p.selection_error if np.isfinite(p.selection_error) else np.inf for p in predictions]
    best = int(np.argmin(scored))  # first of equals: the METHODS order
    out = list(predictions)
    out[best] = Prediction(**{**out[best].row(), "chosen": True})
    return out


def backtest_ladder(ladder: Ladder, level: float = 0.9) -> list[dict]:
    """Rows of backtest.parquet: fit below the largest size, predict each of its final checkpoints."""
    largest = ladder.sizes.max()
    if ladder.sizes.size < 4:
        return []
    held_out = np.flatnonzero(ladder.n == largest)
    per_target = forecast_each(ladder.below(largest), [(largest, ladder.d[i]) for i in held_out], level)
    return [{**p.row(), "held_out_model": ladder.models[i], "held_out_revision": ladder.revisions[i],
             "measured": float(ladder.y[i]), "error": p.predicted - ladder.y[i],
             "abs_error": abs(p.predicted - ladder.y[i])}
            for i, predictions in zip(held_out, per_target) for p in predictions]


def predict_targets(ladder: Ladder, targets: list[tuple[float, float]], level: float = 0.9) -> list[dict]:
    """Rows of predictions.parquet: every method at every (n, d) target, fitted on the whole ladder."""
    return [p.row() for p in forecast(ladder, list(targets), level)]


__all__ = ["BACKTEST_COLUMNS", "PREDICTION_COLUMNS", "Prediction", "backtest_ladder", "forecast", "predict_targets"]
