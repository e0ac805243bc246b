"""Back-test: fit on every size but the largest, predict the largest, compare with the measurement.

The prediction interval comes from the paired bootstrap: each resample refits the smaller sizes and
re-measures the largest on the same documents, so e_b = (measured_b - predicted_b) -
(measured - predicted) is the error's sampling spread, and the interval is predicted + quantiles(e_b).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.analysis.laws import NEGATED, SIGMOID_FREE_CEILING_SIZES
from harness.analysis.series import Series
from harness.analysis.fit import fit_power_law, fit_power_law_batch, fit_sigmoid


@dataclass(frozen=True)
class Backtest:
    task: str
    metric: str
    law: str
    held_out_n: float
    measured: float
    predicted: float
    pi_low: float  # NaN without per-document resamples
    pi_high: float

    @property
    def error(self) -> float:
        return self.predicted - self.measured

    @property
    def rel_error(self) -> float:
        return self.error / abs(self.measured) if self.measured != 0 else float("nan")

    @property
    def inside(self) -> bool | None:
        if not (np.isfinite(self.pi_low) and np.isfinite(self.pi_high)):
            return None
        return bool(self.pi_low <= self.measured <= self.pi_high)


def backtest(s: Series, law: str, level: float) -> Backtest:
    """Raises ValueError (the skip reason) when fewer than 3 sizes remain below the largest."""
    largest = s.n.max()
    train = s.n < largest
    if np.unique(s.n[train]).size < 3:
        raise ValueError(f"{s.task}/{s.metric} ({law} back-test): needs >= 4 sizes, has {s.n_sizes}; skipped")
    if np.ptp(s.y[train]) == 0:
        raise ValueError(f"{s.task}/{s.metric} ({law} back-test): constant values below the largest size; skipped")
    predict = _predictor(s, law, train, largest)
    measured = float(s.y[~train].mean())
    predicted = float(predict(s.y[train][None, :])[0])
    lo = hi = float("nan")
    if s.boot is not None:
        pred_b = predict(s.boot[:, train])
        err_b = (s.boot[:, ~train].mean(1) - pred_b) - (measured - predicted)
        err_b = err_b[np.isfinite(err_b)]
        if err_b.size >= 10:
            tail = 50.0 * (1 - level)
            q_lo, q_hi = np.percentile(err_b, [tail, 100 - tail])
            lo, hi = predicted + q_lo, predicted + q_hi
    return Backtest(s.task, s.metric, law, float(largest), measured, predicted, float(lo), float(hi))


def _predictor(s: Series, law: str, train: np.ndarray, largest: float):
    """(R, P_train) values -> (R,) predictions at the largest size (NaN where a refit fails)."""
    n = s.n[train]
    if law == "power_law":
        sign = -1.0 if s.metric in NEGATED else 1.0

        def predict(ys):
            e, a, alpha = fit_power_law_batch(n, sign * ys)
            return sign * (e + a / largest**alpha)

        fit_power_law(n, sign * s.y[train])  # validates (raises the skip reason) before batching
        return predict
    if law == "sigmoid":
        ceiling = None if np.unique(n).size >= SIGMOID_FREE_CEILING_SIZES else 1.0
        start = fit_sigmoid(n, s.y[train], ceiling=ceiling).params

        def predict(ys):
            out = np.full(ys.shape[0], np.nan)
            for i, row in enumerate(ys):
                try:
                    out[i] = fit_sigmoid(n, row, ceiling=ceiling, start=start).predict(largest)
                except ValueError:
                    pass
            return out

        return predict
    raise ValueError(f"no back-test for law {law!r}")
