"""One law fitted to one Series, with bootstrap intervals and a band: the rows of fits.parquet.

Skips are ValueErrors whose message is the one-line reason the report lists. A fit that ran but
cannot be trusted says so: `reliable` False and its `caveats`; its note then starts with UNRELIABLE
(fits.parquet keeps the note, so readers such as `harness compute --run` can refuse it).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.analysis.series import Series
from harness.analysis.bootstrap import model_resamples, percentile_interval, refit_each
from harness.analysis.fit import Goodness, fit_chinchilla, fit_chinchilla_batch, fit_power_law, fit_power_law_batch, fit_sigmoid
from harness.analysis.fit._common import goodness
from harness.analysis.fit.chinchilla import SANE_EXPONENTS, ChinchillaFit
from harness.analysis.fit.reliability import UNRELIABLE, assess_chinchilla
from harness.analysis.fit.residuals import Interaction, Trend
from harness.analysis.frontier import LadderFrontier, exponents, frontier_rows, ladder_frontier, residual_rows
from harness.analysis.fit.sigmoid import K_BOUNDS, X0_MARGIN, SigmoidFit

NEGATED = frozenset({"target_loglik"})  # fitted as a loss: -log p(target) falls with size
SIGMOID_FREE_CEILING_SIZES = 5  # below this many sizes the ceiling is fixed at 1 (3-4 points cannot pin 4 parameters)


@dataclass(frozen=True)
class FitOutcome:
    series: Series
    law: str  # power_law | sigmoid | chinchilla
    params: dict[str, float]
    draws: dict[str, np.ndarray]  # bootstrap draws per parameter (empty without resamples)
    gof: Goodness
    transform: str  # "identity" or "negate" (the law was fitted to -y)
    note: str = ""
    ci_method: str = "none"
    band: pd.DataFrame | None = field(default=None, repr=False)  # n, estimate, low, high (untransformed y)
    reliable: bool = True  # False: report the numbers, derive nothing from them (chinchilla: no frontier)
    caveats: tuple[str, ...] = ()  # one clause per problem (parameters on bounds, failed checks)
    trends: tuple[Trend | Interaction, ...] = ()  # chinchilla: its log-residual checks (fit.residuals)
    # chinchilla: Approach 3's frontier when reliable, Approach 2's when its points are separate runs
    frontier: LadderFrontier | None = field(default=None, repr=False)

    def rows(self, level: float) -> list[dict]:
        """fits.parquet rows: one per parameter, then (chinchilla) the residual trends and, for a
        reliable fit, the frontier (analysis.frontier), which share the fit's goodness columns."""
        s = self.series
        base = {"task": s.task, "metric": s.metric, "filter": s.filter, "law": self.law, "ci_level": level,
                "ci_method": self.ci_method, "n_sizes": s.n_sizes, "transform": self.transform, "note": self.note,
                "reliable": self.reliable, **self.gof.as_dict()}
        out = []
        for name, value in self.params.items():
            lo, hi = percentile_interval(self.draws[name], level) if name in self.draws else (np.nan, np.nan)
            ok = int(np.isfinite(self.draws[name]).sum()) if name in self.draws else 0
            out.append({**base, "param": name, "estimate": float(value), "ci_low": lo, "ci_high": hi, "n_boot_ok": ok})
        out += residual_rows(base, self.trends)
        return out + (frontier_rows(base, self.frontier) if self.frontier is not None else [])


def _check(s: Series, law: str, min_sizes: int = 3) -> None:
    where = f"{s.task}/{s.metric} ({law})"
    if s.y.size == 0:
        raise ValueError(f"{where}: no finite values" + (f" (NaN for {', '.join(s.dropped)})" if s.dropped else ""))
    if s.n_sizes < min_sizes:
        raise ValueError(f"{where}: only {s.n_sizes} distinct size(s) {sorted(set(s.n.tolist()))}; "
                         f"needs >= {min_sizes}, fit skipped")
    if np.ptp(s.y) == 0:
        raise ValueError(f"{where}: values are constant ({s.y[0]:g}) across sizes, fit skipped")


def _band(n, draws_pred: np.ndarray | None, estimate: np.ndarray, level: float, sign: float) -> pd.DataFrame:
    lo = hi = np.full(n.size, np.nan)
    if draws_pred is not None and draws_pred.shape[0] >= 10:
        tail = 50.0 * (1 - level)
        lo, hi = np.nanpercentile(sign * draws_pred, [tail, 100 - tail], axis=0)
    return pd.DataFrame({"n": n, "estimate": sign * estimate, "low": lo, "high": hi})


MIN_POINTS_MODEL_BOOTSTRAP = 4  # with 3 points almost every resample repeats one and cannot be fitted


def _model_draws(s: Series, fit_params, n_boot: int, seed: int) -> tuple[dict[str, np.ndarray], str]:
    """Bootstrap over models (points) when the run kept no per-document samples."""
    if n_boot <= 0 or s.n.size < MIN_POINTS_MODEL_BOOTSTRAP:
        return {}, "none"
    idx = model_resamples(s.n.size, n_boot, seed, groups=s.n)
    if len(idx) < 10:
        return {}, "none"
    draws = refit_each(lambda row: fit_params(s.n[row.astype(int)], s.y[row.astype(int)]), idx.astype(float))
    return draws, f"model bootstrap (R={len(idx)})"


def _grid(s: Series) -> np.ndarray:
    return np.geomspace(s.n.min() / 2.0, s.n.max() * 2.0, 60)


def power_law(s: Series, level: float, n_boot: int = 0, seed: int = 0) -> FitOutcome:
    _check(s, "power_law")
    sign = -1.0 if s.metric in NEGATED else 1.0
    fit = fit_power_law(s.n, sign * s.y)
    grid = _grid(s)
    if s.boot is not None:
        e, a, alpha = fit_power_law_batch(s.n, sign * s.boot)
        draws, method = {"E": e, "A": a, "alpha": alpha}, s.ci_method
    else:
        draws, method = _model_draws(s, lambda n, y: fit_power_law(n, sign * y).params, n_boot, seed)
    pred = None
    if draws:
        e, a, alpha = draws["E"], draws["A"], draws["alpha"]
        pred = e[:, None] + a[:, None] / grid[None, :] ** alpha[:, None]
    note = "" if fit.params["A"] > 0 else "no decrease with size: flat fit (A = 0)"
    return FitOutcome(s, "power_law", fit.params, draws, fit.gof, "negate" if sign < 0 else "identity", note,
                      method, _band(grid, pred, fit.predict(grid), level, sign))


def sigmoid(s: Series, level: float, n_boot: int = 0, seed: int = 0) -> FitOutcome:
    _check(s, "sigmoid")
    if s.y.min() < 0 or s.y.max() > 1:
        raise ValueError(f"{s.task}/{s.metric} (sigmoid): values outside [0, 1], not an accuracy; fit skipped")
    ceiling = None if s.n_sizes >= SIGMOID_FREE_CEILING_SIZES else 1.0
    fit = fit_sigmoid(s.n, s.y, ceiling=ceiling)
    params = {**fit.params, "N_star": fit.threshold}
    grid = _grid(s)
    pred = None
    if s.boot is not None:
        draws = refit_each(lambda row: fit_sigmoid(s.n, row, ceiling=ceiling, start=fit.params).params, s.boot)
        method = s.ci_method
    else:
        draws, method = _model_draws(
            s, lambda n, y: fit_sigmoid(n, y, ceiling=ceiling, start=fit.params).params, n_boot, seed)
    if draws:
        draws["N_star"] = 10.0 ** draws["x0"]
        u = np.log10(grid)[None, :]
        pred = draws["floor"][:, None] + (draws["ceiling"] - draws["floor"])[:, None] / (
            1 + np.exp(-draws["k"][:, None] * (u - draws["x0"][:, None])))
    notes = []
    if ceiling is not None:
        notes.append(f"ceiling fixed at 1 (< {SIGMOID_FREE_CEILING_SIZES} sizes)")
    if fit.threshold_outside_range:
        notes.append(f"N* = {fit.threshold:.3g} outside the measured range {s.n.min():.3g}-{s.n.max():.3g}")
    caveats = sigmoid_bound_notes(fit)
    # x0 on the edge of its search range: N* is where the search stopped, not a property of the data.
    reliable = "x0" not in fit.at_bounds
    note = "; ".join(([] if reliable else [f"{UNRELIABLE}: N* not identified"]) + notes + list(caveats))
    return FitOutcome(s, "sigmoid", params, draws, fit.gof, "identity", note, method,
                      _band(grid, pred, fit.predict(grid), level, 1.0), reliable, caveats)


def sigmoid_bound_notes(fit: SigmoidFit) -> tuple[str, ...]:
    """One clause per parameter of a sigmoid fit that ended on a bound (`SigmoidFit.at_bounds`).

    >>> from harness.analysis.fit import Goodness
    >>> fit = SigmoidFit({"x0": 8.7, "k": 50.0, "floor": 0.25, "ceiling": 1.0}, Goodness(7, 3, 0, 0, 1), (1e7, 1e10),
    ...                  at_bounds=("k", "ceiling"))
    >>> sigmoid_bound_notes(fit)
    ('k at its bound 50 (a step, not a sigmoid)', 'ceiling at its bound 1')
    """
    p, out = fit.params, []
    if "x0" in fit.at_bounds:
        out.append(f"x0 at the edge of its search range ({X0_MARGIN:g} decades beyond the sizes)")
    if "k" in fit.at_bounds:
        steep = p["k"] > np.sqrt(K_BOUNDS[0] * K_BOUNDS[1])
        out.append(f"k at its bound {K_BOUNDS[1]:g} (a step, not a sigmoid)" if steep
                   else f"k at its bound {K_BOUNDS[0]:g} (no rise within the sizes)")
    for level in ("floor", "ceiling"):
        if level in fit.at_bounds:
            out.append(f"{level} at its bound {round(p[level]):g}")
    return tuple(out)


def chinchilla(s: Series, level: float, n_boot: int = 0, seed: int = 0) -> FitOutcome:
    """L(N, D) over every (model, revision) point with a known token count. The N_opt and D_opt
    exponents are reported with every fit; `reliable` False (fit.reliability) says they must not be
    read as a compute-optimal frontier."""
    known = np.isfinite(s.d) & (s.d > 0)
    per_size = pd.Series(s.d[known]).groupby(s.n[known]).nunique()
    if (per_size >= 2).sum() < 3:
        raise ValueError(f"{s.task}/{s.metric} (chinchilla): needs >= 2 token counts (revisions) for >= 3 sizes, "
                         f"has {int((per_size >= 2).sum())} such size(s); fit skipped")
    if np.any(s.y[known] <= 0) or np.ptp(s.y[known]) == 0:
        raise ValueError(f"{s.task}/{s.metric} (chinchilla): losses must vary and be > 0; fit skipped")
    n, d, y = s.n[known], s.d[known], s.y[known]
    fit = fit_chinchilla(n, d, y, refine=True)  # the bootstrap refits use the same tight tolerances
    params = _with_frontier_exponents(dict(fit.params))
    draws, method = _chinchilla_draws(s, known, fit, n_boot, seed)
    draws = _with_frontier_exponents(draws) if draws else {}
    fitted = fit.predict(n, d)
    gof = goodness(y, fitted, 5)
    check = assess_chinchilla(n, d, y, np.asarray(s.runs, dtype=object)[known], gof, np.log(y) - np.log(fitted))
    caveats = check.caveats + chinchilla_bound_notes(fit)
    notes = [f"{int(known.sum())} (N, D) points; Huber delta 1e-3, 4,500-start grid"]
    if not draws:
        notes.append("no intervals: no resamples (none asked for, or too few points to resample)")
    if not check.reliable:
        notes.insert(0, f"{UNRELIABLE}: no compute-optimal frontier from this law")
    # Approach 2 needs separate runs, not the law: an unreliable law still gets IsoFLOP profiles.
    frontier = (ladder_frontier(n, d, y, fit.params, draws, level, approach3=check.reliable)
                if check.reliable or check.separate_runs else None)
    return FitOutcome(s, "chinchilla", params, draws, gof, "identity", "; ".join(notes + list(caveats)),
                      method, reliable=check.reliable, caveats=caveats, trends=check.trends, frontier=frontier)


def _chinchilla_draws(s: Series, known: np.ndarray, fit: ChinchillaFit, n_boot: int,
                      seed: int) -> tuple[dict[str, np.ndarray], str]:
    """Refits of L(N, D) over resamples of the (N, D) points (each a training run), run as point
    weights in one batched refit from the point fit; with per-document samples each refit also
    takes one document resample. The documents alone would miss most of the uncertainty: a paired
    document resample moves every point together, while what pins alpha and beta down is how the
    points scatter about the law (run-to-run noise, misfit), which only resampling the points sees.
    On a synthetic 6 x 6 ladder with 0.3% noise per run and 200 documents, the documents alone gave
    N_opt's exponent a 95% interval of width 0.013, the points 0.043, both together 0.043."""
    n, d, y = s.n[known], s.d[known], s.y[known]
    rows = n_boot if s.boot is None else s.boot.shape[0]
    idx = model_resamples(n.size, rows, seed, groups=n) if n.size >= MIN_POINTS_MODEL_BOOTSTRAP else np.empty((0, 0))
    if len(idx) < 10:  # too few points (or resamples) to resample them: documents only, or nothing
        if s.boot is None:
            return {}, "none"
        return fit_chinchilla_batch(n, d, s.boot[:, known], fit.theta), s.ci_method
    weights = np.stack([np.bincount(row, minlength=n.size) for row in idx]).astype(float)
    losses = np.tile(y, (len(idx), 1)) if s.boot is None else s.boot[: len(idx)][:, known]
    method = f"point bootstrap over (N, D) runs (R={len(idx)})"
    if s.boot is not None:
        method = f"{s.ci_method} x {method}"
    return fit_chinchilla_batch(n, d, losses, fit.theta, weights=weights), method


def _with_frontier_exponents(p: dict) -> dict:
    """Adds N_opt ∝ C^(beta / (alpha + beta)) and D_opt ∝ C^(alpha / (alpha + beta)) (floats or draws)."""
    p["N_opt_exponent"], p["D_opt_exponent"] = exponents(p)
    return p


def chinchilla_bound_notes(fit: ChinchillaFit) -> tuple[str, ...]:
    """One clause for E on a bound (`ChinchillaFit.at_bounds`) and one per implausible exponent.

    >>> fit = ChinchillaFit({"A": 9.0, "B": 9.0, "E": 1e-40, "alpha": 0.3, "beta": 2.5}, 0.0, 30, 1, loss_min=2.5)
    >>> chinchilla_bound_notes(fit)
    ('E collapsed to its bound 0 (E = 1e-40, under 1% of the smallest loss)', 'beta = 2.5 outside 0.05-1')
    """
    out = []
    if "E" in fit.at_bounds:
        e = fit.params["E"]
        out.append(f"E collapsed to its bound 0 (E = {e:.2g}, under 1% of the smallest loss)" if e < 0.5 * fit.loss_min
                   else f"E at its bound, the smallest loss {fit.loss_min:.4g}")
    lo, hi = SANE_EXPONENTS
    out += [f"{k} = {fit.params[k]:.3g} outside {lo:g}-{hi:g}" for k in fit.implausible]
    return tuple(out)
