"""The laws that extrapolate a ladder: each takes a Ladder and returns a predictor (n, d) -> value
on the metric's working scale (`working`): accuracy as is, a loss on its loss scale.

Accuracy (acc, acc_norm, exact_match):
  sigmoid            accuracy = floor + (ceiling - floor) / (1 + exp(-k (log10 N - x0))), the floor
                     fixed at chance where the number of choices is known, the ceiling at 1 below
                     `laws.SIGMOID_FREE_CEILING_SIZES` sizes.
  two_step           Bhagia et al. 2024: a power law of the task loss in N on the final checkpoints,
                     then accuracy as a sigmoid of that loss fitted over every checkpoint of every size.
  compute_power_law  Krajewski et al. 2025: -log(accuracy) = E + A / C^alpha, C = 6 N D (N alone where
                     tokens are unknown, i.e. as if every size saw the same tokens).
Loss (bits per byte, nats per token, log perplexity, -log p(gold), Brier, edit distance):
  power_law          loss = E + A / N^alpha.
Every fit raises ValueError with a one-line reason when it cannot be made.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from harness.analysis.fit import fit_power_law, fit_sigmoid
from harness.analysis.laws import SIGMOID_FREE_CEILING_SIZES
from harness.analysis.predict.points import Ladder, to_loss

Predictor = Callable[[float, float], float]

MIN_PAIRS_TWO_STEP = 4  # (loss, accuracy) points for the step-2 sigmoid: its 3 free parameters and one more


def working(ladder: Ladder, y) -> np.ndarray:
    """Values on the scale the laws and the interval work on."""
    return np.asarray(y, dtype=float) if ladder.kind == "accuracy" else to_loss(ladder.metric, y)


def sigmoid(ladder: Ladder) -> Predictor:
    ceiling = None if ladder.sizes.size >= SIGMOID_FREE_CEILING_SIZES else 1.0
    floor = ladder.chance if ladder.chance is not None and ladder.chance < ladder.y.max() else None
    fit = fit_sigmoid(ladder.n, ladder.y, floor=floor, ceiling=ceiling)
    return lambda n, d: float(fit.predict(n))


def two_step(ladder: Ladder) -> Predictor:
    if ladder.loss is None or ladder.pair_loss is None:
        raise ValueError(f"{ladder.task}/{ladder.metric} (two_step): the run has no task loss for this task")
    ok = np.isfinite(ladder.loss)
    step1 = fit_power_law(ladder.n[ok], ladder.loss[ok])
    good = np.isfinite(ladder.pair_loss) & np.isfinite(ladder.pair_y)
    if good.sum() < MIN_PAIRS_TWO_STEP:
        raise ValueError(f"{ladder.task}/{ladder.metric} (two_step): {int(good.sum())} (loss, accuracy) points, "
                         f"needs >= {MIN_PAIRS_TWO_STEP}")
    floor = ladder.chance if ladder.chance is not None and ladder.chance < ladder.pair_y.max() else None
    # fit_sigmoid works in log10 of its x: x = 10^-loss makes that axis -loss, rising as the loss falls.
    step2 = fit_sigmoid(10.0 ** -ladder.pair_loss[good], ladder.pair_y[good], floor=floor)
    return lambda n, d: float(step2.predict(10.0 ** -step1.predict(n)))


def _compute(ladder: Ladder, n, d) -> np.ndarray:
    """6 N D, or 6 N when the ladder's tokens are not all known (then D is taken as the same for all)."""
    n = np.asarray(n, dtype=float)
    if np.all(np.isfinite(ladder.d) & (ladder.d > 0)):
        d = np.asarray(d, dtype=float)
        d = np.where(np.isfinite(d) & (d > 0), d, ladder.d[np.argmax(ladder.n)])
        return 6.0 * n * d
    return 6.0 * n


def compute_power_law(ladder: Ladder) -> Predictor:
    if np.any(ladder.y <= 0):
        raise ValueError(f"{ladder.task}/{ladder.metric} (compute_power_law): an accuracy of 0 has no log")
    fit = fit_power_law(_compute(ladder, ladder.n, ladder.d), -np.log(ladder.y))
    return lambda n, d: float(np.exp(-fit.predict(_compute(ladder, n, d))))


def power_law(ladder: Ladder) -> Predictor:
    fit = fit_power_law(ladder.n, working(ladder, ladder.y))
    return lambda n, d: float(fit.predict(n))


METHODS: dict[str, tuple[tuple[str, Callable[[Ladder], Predictor]], ...]] = {
    "accuracy": (("sigmoid", sigmoid), ("two_step", two_step), ("compute_power_law", compute_power_law)),
    "loss": (("power_law", power_law),),
}
