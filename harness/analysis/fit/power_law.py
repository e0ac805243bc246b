"""y = E + A / n^alpha fitted by least squares (E >= 0, A >= 0, alpha in [0.001, 3]).

For a fixed alpha the model is linear in (E, A), so we profile it out ("variable projection"):
solve the 2-parameter least squares in closed form on a grid of 160 alphas, then narrow the best
grid bracket by golden-section search. This finds the global optimum along alpha to within the
grid's resolution, needs no starting guess, and runs for a whole batch of bootstrap resamples at
once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.analysis.fit._common import Goodness, check_xy, goodness

ALPHA_GRID = np.geomspace(1e-3, 3.0, 160)
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class PowerLawFit:
    """Fitted y = E + A / n^alpha."""

    params: dict[str, float]  # E, A, alpha
    gof: Goodness
    n_range: tuple[float, float]

    def predict(self, n) -> np.ndarray:
        p = self.params
        return p["E"] + p["A"] / np.asarray(n, dtype=float) ** p["alpha"]


def fit_power_law(n, y) -> PowerLawFit:
    """Fit y = E + A / n^alpha to >= 3 distinct sizes.

    Raises:
        ValueError: fewer than 3 sizes, NaN/inf, or constant values (the message says which).
    """
    n, y = check_xy(n, y, who="fit_power_law")
    e, a, alpha = fit_power_law_batch(n, y[None, :])
    params = {"E": float(e[0]), "A": float(a[0]), "alpha": float(alpha[0])}
    fit = PowerLawFit(params=params, gof=goodness(y, y, 3), n_range=(float(n.min()), float(n.max())))
    return PowerLawFit(params=params, gof=goodness(y, fit.predict(n), 3), n_range=fit.n_range)


def fit_power_law_batch(n: np.ndarray, ys: np.ndarray, iters: int = 40):
    """Fit every row of ys (R, P) against the same sizes n (P,); returns arrays E, A, alpha (R,)."""
    n = np.asarray(n, dtype=float)
    ys = np.asarray(ys, dtype=float)
    n_ref = float(np.exp(np.log(n).mean()))  # conditioning: n / n_ref is O(1)
    logx = np.log(n / n_ref)
    rss = _profile_rss(logx, ys, ALPHA_GRID)[0]  # (R, G)
    best = rss.argmin(axis=1)
    lo = ALPHA_GRID[np.maximum(best - 1, 0)]
    hi = ALPHA_GRID[np.minimum(best + 1, ALPHA_GRID.size - 1)]
    for _ in range(iters):  # golden-section on each row's bracket, all rows together
        m1 = hi - _GOLDEN * (hi - lo)
        m2 = lo + _GOLDEN * (hi - lo)
        f1 = _profile_rss_rows(logx, ys, m1)[0]
        f2 = _profile_rss_rows(logx, ys, m2)[0]
        left = f1 <= f2
        hi = np.where(left, m2, hi)
        lo = np.where(left, lo, m1)
    alpha = 0.5 * (lo + hi)
    _, e, a_scaled = _profile_rss_rows(logx, ys, alpha)
    return e, a_scaled * n_ref**alpha, alpha


def _profile_rss(logx, ys, alphas):
    """RSS, E, A for each row of ys and each alpha: arrays (R, G)."""
    z = np.exp(-np.outer(alphas, logx))  # (G, P)
    return _solve(ys[:, None, :], z[None, :, :])


def _profile_rss_rows(logx, ys, alpha):
    """Same, one alpha per row: arrays (R,)."""
    z = np.exp(-alpha[:, None] * logx[None, :])  # (R, P)
    rss, e, a = _solve(ys[:, None, :], z[:, None, :])
    return rss[:, 0], e[:, 0], a[:, 0]


def _solve(y, z):
    """Least squares y ~ E + A z with E, A >= 0, broadcast over leading axes; returns rss, E, A."""
    p = y.shape[-1]
    zm, ym = z.mean(-1), y.mean(-1)
    szz = (z * z).sum(-1) - p * zm * zm
    szy = (z * y).sum(-1) - p * zm * ym
    a = np.where(szz > 0, szy / np.where(szz > 0, szz, 1.0), 0.0)
    e = ym - a * zm
    # Constraint handling: A < 0 -> flat line at the mean; E < 0 -> pure power law through 0.
    flat = a < 0
    a = np.where(flat, 0.0, a)
    e = np.where(flat, ym, e)
    neg_e = e < 0
    a_origin = (z * y).sum(-1) / np.maximum((z * z).sum(-1), 1e-300)
    a = np.where(neg_e, np.maximum(a_origin, 0.0), a)
    e = np.where(neg_e, 0.0, e)
    resid = y - e[..., None] - a[..., None] * z
    return (resid * resid).sum(-1), e, a
