"""Prediction intervals that carry the error of the law, not only the noise of the documents.

Two parts, on the working scale (accuracy; a loss in nats or bits):
  noise  what the documents' noise does to the prediction: the prediction's sensitivity to each
         fitted point (refit with that point moved by its standard error: a secant, since fits with
         bounds are not smooth) combined over the points, plus the target's own measurement noise;
  law    what the law itself misses: forward-chaining over the smaller sizes (fit sizes 1..k,
         predict size k+1) gives errors e_j whose square exceeds their own noise part v_j by the
         law's error; sigma_law^2 = max(0, weighted mean(e_j^2 - v_j)), each e_j first scaled by how far the
         target lies beyond the fitted range relative to the fold's reach (in log N), as an
         extrapolation's error grows with its distance.
The interval is predicted +- sqrt(z^2 noise^2 + t^2 sigma_law^2): a normal quantile for the noise,
whose variance adds up from the points' standard errors, and Student's t with one degree of freedom
per fold for the law's part, which a handful of folds measure poorly. Coverage is
checked on synthetic ladders with known laws, including ones no method knows
(tests/unit/analysis/predict/test_coverage.py).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from harness.analysis.predict.methods import working
from harness.analysis.predict.points import LOSS_SCALE, Ladder

MIN_FIT_SIZES = 3  # the three-parameter laws need three sizes


@dataclass(frozen=True)
class FoldErrors:
    """Forward-chaining errors of one method on one ladder (working scale)."""

    errors: np.ndarray  # predicted - measured at size k+1, fitting sizes 1..k
    noise_var: np.ndarray  # the part of each error's variance the documents' noise explains
    reach: np.ndarray  # log(N_{k+1} / N_k): how far each fold extrapolated

    @property
    def n_folds(self) -> int:
        return int(self.errors.size)

    @property
    def mean_abs(self) -> float:
        return float(np.mean(np.abs(self.errors))) if self.errors.size else float("nan")


def at_size(ladder: Ladder, size: float) -> tuple[float, float]:
    """Mean working value and mean tokens of the ladder's points at one size."""
    pick = ladder.n == size
    d = ladder.d[pick]
    return float(working(ladder, ladder.y[pick]).mean()), float(np.nanmean(d)) if np.isfinite(d).any() else np.nan


def point_noise(ladder: Ladder) -> np.ndarray:
    """Each point's standard error on the metric's own scale: the reported one, else the typical
    residual of a smooth fit (the median of the others' when only some are reported)."""
    se = np.asarray(ladder.stderr, dtype=float).copy()
    known = np.isfinite(se) & (se > 0)
    if known.any():
        se[~known] = np.median(se[known])
        return se
    # No stderr anywhere: the spread of the differences between neighbouring sizes' values around
    # their median (a crude, law-free noise level).
    w = working(ladder, ladder.y)
    steps = np.diff(w[np.argsort(ladder.n)])
    scale = float(np.median(np.abs(steps - np.median(steps)))) if steps.size >= 3 else float(np.std(w))
    if LOSS_SCALE.get(ladder.metric) == "log":
        return np.abs(ladder.y) * scale
    return np.full(ladder.y.shape, scale)


def working_noise(ladder: Ladder, se: np.ndarray) -> np.ndarray:
    if LOSS_SCALE.get(ladder.metric) == "log":  # delta method: d log y = dy / y
        return se / np.abs(ladder.y)
    return se


def prediction_noise_var(ladder: Ladder, method, predicted: float, n: float, d: float) -> float:
    """Variance of the prediction from the fitted points' noise: sum_i (dpred/dy_i * se_i)^2."""
    se = point_noise(ladder)
    total = 0.0
    for i in range(ladder.y.size):
        y = ladder.y.copy()
        y[i] += se[i]
        try:
            moved = method(replace(ladder, y=y))(n, d)
        except ValueError:
            continue
        if np.isfinite(moved):
            total += (moved - predicted) ** 2
    return float(total)


def fold_errors(ladder: Ladder, method) -> FoldErrors:
    sizes = ladder.sizes
    errors, noise_var, reach = [], [], []
    meas_var = working_noise(ladder, point_noise(ladder)) ** 2
    for k in range(MIN_FIT_SIZES, sizes.size):
        train = ladder.below(sizes[k])
        measured, d = at_size(ladder, sizes[k])
        try:
            predicted = method(train)(sizes[k], d)
        except ValueError:
            continue
        if np.isfinite(predicted):
            errors.append(predicted - measured)
            own = float(np.mean(meas_var[ladder.n == sizes[k]]))
            noise_var.append(prediction_noise_var(train, method, predicted, sizes[k], d) + own)
            reach.append(np.log(sizes[k] / sizes[k - 1]))
    return FoldErrors(*(np.asarray(a, dtype=float) for a in (errors, noise_var, reach)))


def law_variance(folds: FoldErrors, target_reach: float) -> float:
    """sigma_law^2 at the target: the fold errors' excess over their noise, scaled to its reach.

    Folds are weighted 1, 2, 4, ... from the first to the last: the last fold (fit on all but the
    largest fitted size) is the nearest analogue of the target, and a law that bends shows it there
    first. Equal weights covered 75% on a bending law in the synthetic check; these 85%.
    """
    scale = np.maximum(target_reach, folds.reach.min()) / folds.reach
    weights = 2.0 ** np.arange(folds.n_folds)
    excess = (folds.errors * scale) ** 2 - folds.noise_var
    return float(max(0.0, (weights * excess).sum() / weights.sum()))


def interval(predicted: float, folds: FoldErrors, noise_var: float, target_reach: float,
             level: float) -> tuple[float, float]:
    """(low, high) on the working scale; NaNs without any fold (the law's error is then unknown)."""
    if folds.n_folds == 0 or not np.isfinite(predicted):
        return float("nan"), float("nan")
    q = 0.5 + level / 2.0
    # The noise part is known in form (its variance adds up from the points' stderr): a normal
    # quantile. The law's part is estimated from a few folds: Student's t with one dof per fold.
    half = np.sqrt(stats.norm.ppf(q) ** 2 * noise_var
                   + stats.t.ppf(q, df=folds.n_folds) ** 2 * law_variance(folds, target_reach))
    return predicted - half, predicted + half
