"""y = floor + (ceiling - floor) / (1 + exp(-k (log10 n - x0))): the emergence curve.

N* = 10^x0 is the size at the midpoint between floor and ceiling. For fixed (x0, k) the curve is
linear in (floor, ceiling), so a grid over (x0, k) with the two linear parameters solved exactly
(inside their bounds) finds the global basin; scipy's least_squares then polishes the free parameters
(x0, k and whichever of floor and ceiling are not fixed).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.analysis.fit._common import Goodness, check_xy, goodness

K_BOUNDS = (0.05, 50.0)  # steepness per decade of n; 50 is already a step between adjacent sizes
X0_MARGIN = 2.0  # decades searched beyond the measured range
# How close to a bound counts as "on" it: least_squares stops on a bound exactly or within ~1e-9, and
# 1e-3 (relative for k, decades for x0, accuracy units for the levels) is far below anything the
# data could resolve, so a parameter this close is set by the bound, not by the points.
BOUND_TOL = 1e-3


@dataclass(frozen=True)
class SigmoidFit:
    """Fitted sigmoid in log10 n; `threshold` is N* = 10^x0."""

    params: dict[str, float]  # x0, k, floor, ceiling
    gof: Goodness
    n_range: tuple[float, float]
    at_bounds: tuple[str, ...] = ()  # fitted parameters that ended on a bound (`on_bounds`)

    @property
    def threshold(self) -> float:
        return float(10.0 ** self.params["x0"])

    @property
    def threshold_outside_range(self) -> bool:
        return not (self.n_range[0] <= self.threshold <= self.n_range[1])

    def predict(self, n) -> np.ndarray:
        return _curve(np.log10(np.asarray(n, dtype=float)), **self.params)


def _curve(u, x0, k, floor, ceiling):
    return floor + (ceiling - floor) / (1.0 + np.exp(-k * (u - x0)))


def fit_sigmoid(n, y, *, floor: float | None = None, ceiling: float | None = None,
                bounds: tuple[float, float] = (0.0, 1.0), start: dict[str, float] | None = None) -> SigmoidFit:
    """Fit the emergence sigmoid to >= 3 distinct sizes.

    Args:
        floor, ceiling: fix these levels (e.g. chance accuracy, 1.0) instead of fitting them.
        bounds: range allowed for fitted floor and ceiling (accuracy lives in [0, 1]).
        start: skip the grid and polish from these parameters (bootstrap refits use the point fit).
    Raises:
        ValueError: fewer than 3 sizes, NaN/inf, or constant values.
    """
    n, y = check_xy(n, y, who="fit_sigmoid")
    u = np.log10(n)
    fixed = {"floor": floor, "ceiling": ceiling}
    free = [name for name, v in fixed.items() if v is None]
    x0_lo, x0_hi = u.min() - X0_MARGIN, u.max() + X0_MARGIN
    guess = start if start is not None else _grid_start(u, y, floor, ceiling, bounds, (x0_lo, x0_hi))
    params = _polish(u, y, guess, fixed, free, bounds, (x0_lo, x0_hi))
    n_fitted = 2 + len(free)
    n_range = (float(n.min()), float(n.max()))
    return SigmoidFit(params=params, gof=goodness(y, _curve(u, **params), n_fitted), n_range=n_range,
                      at_bounds=on_bounds(params, (x0_lo, x0_hi), bounds, free))


def on_bounds(params: dict[str, float], x0_range: tuple[float, float], level_bounds: tuple[float, float],
              free_levels=("floor", "ceiling")) -> tuple[str, ...]:
    """Names of the parameters within BOUND_TOL of a bound: k of K_BOUNDS, x0 of its search range,
    and floor or ceiling of `level_bounds` when they were fitted (a fixed level is not a finding).

    >>> on_bounds({"x0": 9.0, "k": 50.0, "floor": 0.25, "ceiling": 1.0}, (5.0, 12.0), (0.0, 1.0), ["floor"])
    ('k',)
    >>> on_bounds({"x0": 12.0, "k": 3.0, "floor": 0.0, "ceiling": 0.9}, (5.0, 12.0), (0.0, 1.0))
    ('x0', 'floor')
    """
    k_lo, k_hi = K_BOUNDS
    near = {"x0": min(abs(params["x0"] - x0_range[0]), abs(params["x0"] - x0_range[1])) <= BOUND_TOL,
            "k": params["k"] <= k_lo * (1 + BOUND_TOL) or params["k"] >= k_hi * (1 - BOUND_TOL)}
    for level in ("floor", "ceiling"):
        if level in free_levels:
            near[level] = min(abs(params[level] - level_bounds[0]), abs(params[level] - level_bounds[1])) <= BOUND_TOL
    return tuple(name for name in ("x0", "k", "floor", "ceiling") if near.get(name, False))


def _grid_start(u, y, floor, ceiling, bounds, x0_range) -> dict[str, float]:
    x0s = np.linspace(*x0_range, 121)
    ks = np.geomspace(0.2, K_BOUNDS[1], 24)
    X0, K = np.meshgrid(x0s, ks, indexing="ij")
    with np.errstate(over="ignore"):  # exp overflows to inf for steep k far from x0: s is then 0, as it should be
        s = 1.0 / (1.0 + np.exp(-K.ravel()[:, None] * (u[None, :] - X0.ravel()[:, None])))  # (G, P)
    rss, lo, hi = _levels(s, y, floor, ceiling, bounds)
    i = int(np.nanargmin(rss))
    return {"x0": float(X0.ravel()[i]), "k": float(K.ravel()[i]), "floor": float(lo[i]), "ceiling": float(hi[i])}


def _levels(s, y, floor, ceiling, bounds):
    """Best (floor, ceiling) within bounds for each row of s; y = floor (1 - s) + ceiling s."""
    lo_b, hi_b = bounds
    cands = []
    if floor is not None and ceiling is not None:
        cands.append((np.full(s.shape[0], floor), np.full(s.shape[0], ceiling)))
    elif floor is not None:
        cands.append((np.full(s.shape[0], floor), _one_level(s, y - floor, floor, bounds)))
    elif ceiling is not None:
        f = _one_level(1 - s, y - ceiling, ceiling, bounds)
        cands.append((f, np.full(s.shape[0], ceiling)))
    else:
        # Box-constrained 2-variable least squares: interior solution, else the best edge.
        a, b = 1 - s, s
        saa, sbb, sab = (a * a).sum(1), (b * b).sum(1), (a * b).sum(1)
        say, sby = (a * y).sum(1), (b * y).sum(1)
        det = saa * sbb - sab**2
        ok = np.abs(det) > 1e-12
        f_int = np.where(ok, (sbb * say - sab * sby) / np.where(ok, det, 1), np.nan)
        c_int = np.where(ok, (saa * sby - sab * say) / np.where(ok, det, 1), np.nan)
        inside = ok & (f_int >= lo_b) & (f_int <= hi_b) & (c_int >= lo_b) & (c_int <= hi_b)
        cands.append((np.where(inside, f_int, np.nan), np.where(inside, c_int, np.nan)))
        for edge in (lo_b, hi_b):
            if np.isfinite(edge):
                cands.append((np.full(s.shape[0], edge), _one_level(s, y - edge * a, 0.0, bounds, scale=b)))
                cands.append((_one_level(a, y - edge * b, 0.0, bounds, scale=a), np.full(s.shape[0], edge)))
    best_rss, best_f, best_c = None, None, None
    for f, c in cands:
        rss = (((y - f[:, None] * (1 - s) - c[:, None] * s)) ** 2).sum(1)
        rss = np.where(np.isfinite(rss), rss, np.inf)
        if best_rss is None:
            best_rss, best_f, best_c = rss, f, c
        else:
            take = rss < best_rss
            best_rss = np.where(take, rss, best_rss)
            best_f, best_c = np.where(take, f, best_f), np.where(take, c, best_c)
    return best_rss, best_f, best_c


def _one_level(s, r, offset, bounds, scale=None):
    """Clipped 1-D least squares for v in r ~ (v - offset) * s (or v * scale when given)."""
    basis = s if scale is None else scale
    v = (basis * r).sum(1) / np.maximum((basis * basis).sum(1), 1e-300)
    v = v + (offset if scale is None else 0.0)
    return np.clip(v, *bounds)


def _polish(u, y, guess, fixed, free, bounds, x0_range) -> dict[str, float]:
    from scipy.optimize import least_squares

    names = ["x0", "k", *free]
    lo = [x0_range[0], K_BOUNDS[0]] + [bounds[0]] * len(free)
    hi = [x0_range[1], K_BOUNDS[1]] + [bounds[1]] * len(free)
    x_init = np.clip([guess[name] for name in names], np.array(lo) + 1e-9, np.array(hi) - 1e-9)

    def params_of(theta):
        p = dict(zip(names, theta))
        p.update({k: v for k, v in fixed.items() if v is not None})
        return p

    def resid(theta):
        return _curve(u, **params_of(theta)) - y

    def jac(theta):
        # Analytic Jacobian: ~5x fewer curve evaluations than finite differences (bootstrap refits).
        p = params_of(theta)
        sig = 1.0 / (1.0 + np.exp(-p["k"] * (u - p["x0"])))
        dsig = sig * (1.0 - sig) * (p["ceiling"] - p["floor"])
        cols = {"x0": -p["k"] * dsig, "k": (u - p["x0"]) * dsig, "floor": 1.0 - sig, "ceiling": sig}
        return np.stack([cols[name] for name in names], axis=1)

    r = least_squares(resid, x_init, jac=jac, bounds=(lo, hi))
    out = dict(zip(names, (float(v) for v in r.x)))
    out.update({k: float(v) for k, v in fixed.items() if v is not None})
    return {k: out[k] for k in ("x0", "k", "floor", "ceiling")}
