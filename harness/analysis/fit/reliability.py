"""Can an L(N, D) fit be trusted with a compute-optimal frontier? Two checks on its points and its R².

(a) One schedule per size. Chinchilla's L(N, D) describes models each trained for D tokens with a
    learning-rate schedule of that length (Hoffmann et al. 2022 train one run per (N, D) and show
    that a cosine cycle longer than the run leaves its loss higher). Intermediate checkpoints of one
    run per size are not such models: their D dependence mixes data with the schedule's decay, and
    Kaplan et al. 2020, who fitted that way, got a very different frontier. When every size's D
    values are checkpoints of one run, the fit is unreliable. A run is a model name (its revisions
    are checkpoints of one schedule), or model@revision for a revision that is a finished schedule
    (scores.parquet's finished_schedule: every revision of a warmup-stable-decay ladder cooled down
    at exactly its budget, so each is a run of its own; `series.run_names`).
(b) A misfit. The law must explain the points: R² below MIN_R2 fails. R² alone misses a law that
    gets every size's D curve wrong on a ladder whose sizes span a wide loss range (the spread
    between sizes dominates the total variance), so the law's residual SD is also compared with
    that of L = E + B / D^beta fitted within each size on its own points. Were the law right, both
    would estimate the same measurement noise (a ratio near 1); MAX_SD_RATIO times more is a law
    that does not describe how loss falls with D, and alpha and beta (hence the frontier) are not
    measured.
(c) Residual structure. Log residuals that still follow N or D (fit.residuals: a monotone trend,
    a size or token budget whose points all sit off the law, or sizes whose residuals move with D
    in different directions) fail, for the same reason as (b): R² and the SD ratio miss a kink the
    law bends around.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.analysis.fit._common import Goodness
from harness.analysis.fit.power_law import fit_power_law
from harness.analysis.fit.residuals import Interaction, Trend, residual_trends

MIN_R2 = 0.95  # OLMo-core's Chinchilla report warns below it (olmo_core/model_ladder/scaling_laws.py)
# Noise alone gives a ratio near 1 (1.3 on the ladders of tests/unit/analysis/test_laws.py); 3 means
# misfit variance 8 times the noise; beta swinging by +-0.03 between alternate sizes gives 10 there.
MAX_SD_RATIO = 3.0
# The per-size residual SD is floored at this fraction of the median loss: the fit's own Huber loss
# treats log residuals below 1e-3 as noise, and without a floor a noise-free ladder (per-size SD ~0)
# would fail the ratio on the optimiser's last digits.
SD_FLOOR = 1e-3
MIN_POINTS_PER_SIZE = 4  # distinct token counts for a per-size curve with a residual (3 parameters + 1)
UNRELIABLE = "unreliable"  # how the fits.parquet note of an untrustworthy fit starts (laws, compute)


@dataclass(frozen=True)
class Reliability:
    """The verdict on one L(N, D) fit."""

    reliable: bool
    caveats: tuple[str, ...]  # one clause per problem found, for the report
    one_schedule: bool  # every size's D values are checkpoints of a single run
    r2: float  # the law's R²
    per_size_r2: float  # median R² of the per-size curves L(D); NaN when no size has MIN_POINTS_PER_SIZE
    sd_ratio: float  # the law's residual SD over the per-size curves' (floored); NaN as per_size_r2
    # the log residuals against N, D and their interaction (check (c)); () without residuals
    trends: tuple[Trend | Interaction, ...] = ()
    # Every size's token counts come from separate runs (no size takes two from one run's checkpoints):
    # what Approach 2's IsoFLOP profiles need (analysis.frontier), whatever the law's misfit.
    separate_runs: bool = False


def runs_per_size(n, d, models) -> dict[float, int]:
    """How many distinct training runs carry each size's points, over the sizes with >= 2 distinct
    token counts (the only ones that say anything about D). `models[i]` names the run of point i: a
    model name, or model@revision for a revision that is a finished schedule (check (a)).

    >>> runs_per_size([1, 1, 2, 2, 3], [10, 20, 10, 20, 10], ["a", "a", "b", "c", "d"])
    {1.0: 1, 2.0: 2}
    """
    n, d, models = np.asarray(n, dtype=float), np.asarray(d, dtype=float), np.asarray(models, dtype=object)
    out = {}
    for size in np.unique(n):
        sel = n == size
        if np.unique(d[sel]).size >= 2:
            out[float(size)] = int(np.unique(models[sel].astype(str)).size)
    return out


def per_size_curves(n, d, y) -> tuple[float, float]:
    """(median R², pooled residual SD) of L = E + B / D^beta fitted within each size with >=
    MIN_POINTS_PER_SIZE token counts; the SD pools the sizes' residual sums over their degrees of
    freedom. NaNs when no size qualifies (or none can be fitted: constant losses)."""
    n, d, y = (np.asarray(v, dtype=float) for v in (n, d, y))
    r2s, rss, dof = [], 0.0, 0
    for size in np.unique(n):
        sel = n == size
        if np.unique(d[sel]).size < MIN_POINTS_PER_SIZE:
            continue
        try:
            gof = fit_power_law(d[sel], y[sel]).gof
        except ValueError:  # constant within the size: no curve
            continue
        r2s.append(gof.r2)
        rss, dof = rss + gof.rss, dof + gof.dof
    r2s = [r for r in r2s if np.isfinite(r)]
    if not r2s or dof <= 0:
        return float("nan"), float("nan")
    return float(np.median(r2s)), float(np.sqrt(rss / dof))


def assess_chinchilla(n, d, y, models, gof: Goodness, log_resid=None) -> Reliability:
    """Checks (a), (b) and, given the fit's log residuals log(y) - log(fitted), (c) of the module
    docstring for a fit with goodness `gof` on the points (n, d, y), where models[i] names the
    training run of point i (a model name, or model@revision for a finished schedule)."""
    runs = runs_per_size(n, d, models)
    single = [size for size, k in runs.items() if k == 1]
    names = [str(m) for m in np.asarray(models, dtype=object)]
    separate = bool(runs) and len(set(names)) == len(names)  # no run gives two points
    one_schedule = bool(runs) and len(single) == len(runs)
    caveats = []
    if one_schedule:
        caveats.append("every size's token counts are checkpoints of one run (one learning-rate schedule), "
                       "not runs trained for those token counts")
    elif single:
        caveats.append(f"{len(single)} of {len(runs)} sizes take their token counts from one run's checkpoints")
    size_r2, size_sd = per_size_curves(n, d, y)
    law_sd = float(np.sqrt(gof.rss / gof.dof)) if gof.dof > 0 else float("nan")
    ratio = law_sd / max(size_sd, SD_FLOOR * float(np.median(y))) if np.isfinite(size_sd) else float("nan")
    if not (gof.r2 >= MIN_R2):  # also NaN
        caveats.append(f"R² {gof.r2:.3f} < {MIN_R2}" + (f" (per-size curves L(D): {size_r2:.3f})"
                                                         if np.isfinite(size_r2) else ""))
    if ratio > MAX_SD_RATIO:
        caveats.append(f"residual SD {ratio:.3g}x that of per-size curves L(D) (R² {gof.r2:.3f} vs "
                       f"{size_r2:.3f}): the law misses how loss falls with D")
    trends = () if log_resid is None else residual_trends(n, d, log_resid)
    caveats += [t.caveat() for t in trends if t.flagged]
    misfit = not (gof.r2 >= MIN_R2) or ratio > MAX_SD_RATIO or any(t.flagged for t in trends)
    return Reliability(reliable=not (one_schedule or misfit), caveats=tuple(caveats), one_schedule=one_schedule,
                       r2=float(gof.r2), per_size_r2=size_r2, sd_ratio=float(ratio), trends=trends,
                       separate_runs=separate)
