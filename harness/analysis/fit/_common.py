"""Shared pieces of the fits: input checks and goodness of fit."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Goodness:
    """How well a curve matches the points it was fitted to."""

    n_points: int
    dof: int  # points minus fitted parameters; 0 means the curve interpolates
    rss: float
    rmse: float
    r2: float  # NaN when the data are constant

    def as_dict(self) -> dict[str, float]:
        return {"n_points": self.n_points, "dof": self.dof, "rss": self.rss, "rmse": self.rmse, "r2": self.r2}


def goodness(y: np.ndarray, yhat: np.ndarray, n_fitted: int) -> Goodness:
    resid = y - yhat
    rss = float(resid @ resid)
    tss = float(((y - y.mean()) ** 2).sum())
    return Goodness(
        n_points=int(y.size),
        dof=int(y.size - n_fitted),
        rss=rss,
        rmse=float(np.sqrt(rss / y.size)),
        r2=float(1.0 - rss / tss) if tss > 0 else float("nan"),
    )


def check_xy(n, y, *, who: str, min_points: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (sizes, values) pair; raise ValueError naming the problem (callers report it)."""
    n = np.asarray(n, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if n.shape != y.shape:
        raise ValueError(f"{who}: n and y differ in length ({n.size} vs {y.size})")
    if not (np.all(np.isfinite(n)) and np.all(n > 0)):
        raise ValueError(f"{who}: sizes must be finite and > 0")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{who}: values contain NaN or inf")
    if np.unique(n).size < min_points:
        raise ValueError(f"{who}: needs >= {min_points} distinct sizes, got {np.unique(n).size}")
    if np.ptp(y) == 0:
        raise ValueError(f"{who}: values are constant ({y[0]:g}); no curve to fit")
    return n, y
