"""The compute-optimal frontier of a reliable L(N, D) fit, with intervals, beside Approach 2's.

Approach 3 (Hoffmann et al. 2022, eq. 4): minimising E + A / N^alpha + B / D^beta under C = 6 N D
gives N_opt ∝ C^a and D_opt ∝ C^b with a = beta / (alpha + beta), b = alpha / (alpha + beta), and
a tokens-per-parameter ratio D_opt / N_opt that moves with C as C^(b - a). Their intervals are
percentiles of the same quantities over the fit's bootstrap draws of (A, B, alpha, beta): each draw
is a whole refit, so the correlation between the exponents is kept. The ratio is given at two
budgets: the ladder's own (the geometric middle of its points' 6 N D range, where the fit is an
interpolation) and Chinchilla's (6 x 70e9 parameters x 1.4e12 tokens = 5.88e23 FLOPs, where
Hoffmann et al.'s ~20 tokens per parameter was measured; for a small ladder, an extrapolation).
Approach 2 (analysis.isoflop) uses the measured points only. fits.parquet gets both as rows, law
"chinchilla_frontier" and "isoflop", and every fit's residual trends as law "chinchilla_residuals".
Approach 3's frontier needs a reliable fit (fit.reliability). Approach 2 assumes no law in N and D,
only a parabola in log N near each profile's minimum, so a misfit of the additive law does not void
it; it needs every point to be a finished run of its own (check (a) of fit.reliability), since a
mid-schedule checkpoint is not on the profile of its C.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.analysis.bootstrap import percentile_interval
from harness.analysis.fit.chinchilla import chinchilla_frontier
from harness.analysis.isoflop import Exponent, Profile, isoflop_exponent, isoflop_profiles

CHINCHILLA_FLOPS = 6.0 * 70e9 * 1.4e12  # Chinchilla's training budget (Hoffmann et al. 2022, Table 1)
FRONTIER_LAW, ISOFLOP_LAW, RESIDUALS_LAW = "chinchilla_frontier", "isoflop", "chinchilla_residuals"
DERIVED_LAWS = (FRONTIER_LAW, ISOFLOP_LAW, RESIDUALS_LAW)


@dataclass(frozen=True)
class Estimate:
    """A derived quantity: its value at the point fit and its percentile interval over the draws."""

    value: float
    low: float = float("nan")
    high: float = float("nan")
    n_ok: int = 0  # draws that gave a finite value


@dataclass(frozen=True)
class LadderFrontier:
    """What an L(N, D) fit's points (Approach 2) and, when the fit is reliable, the fit itself (Approach 3)
    say about compute-optimal scaling. The Approach 3 fields are None for an unreliable fit."""

    params: dict[str, float]  # the L(N, D) fit
    a: Estimate | None  # N_opt ∝ C^a
    b: Estimate | None  # D_opt ∝ C^b
    flops_ladder: float
    n_opt_ladder: Estimate | None
    ratio_ladder: Estimate | None  # D_opt / N_opt at flops_ladder
    ratio_chinchilla: Estimate | None  # at CHINCHILLA_FLOPS
    profiles: tuple[Profile, ...]  # Approach 2's IsoFLOP profiles
    approach2: Exponent | None  # None with fewer than 2 profiles that have a minimum


def exponents(p: dict) -> tuple:
    """(a, b): the exponents of N_opt and D_opt in C; floats or arrays of draws."""
    return p["beta"] / (p["alpha"] + p["beta"]), p["alpha"] / (p["alpha"] + p["beta"])


def tokens_per_param(p: dict, flops: float):
    """D_opt / N_opt at compute `flops`; a float or an array of draws."""
    n_opt, d_opt = chinchilla_frontier(p, flops)
    return d_opt / n_opt


def ladder_flops(n, d) -> float:
    """The geometric middle of the points' compute range: sqrt(min(6ND) max(6ND))."""
    c = 6.0 * np.asarray(n, dtype=float) * np.asarray(d, dtype=float)
    return float(np.sqrt(c.min() * c.max()))


def _estimate(value, draws, level: float) -> Estimate:
    if draws is None:
        return Estimate(float(value))
    draws = np.asarray(draws, dtype=float)
    lo, hi = percentile_interval(draws, level)
    return Estimate(float(value), lo, hi, int(np.isfinite(draws).sum()))


def ladder_frontier(n, d, y, params: dict[str, float], draws: dict[str, np.ndarray], level: float,
                    approach3: bool = True) -> LadderFrontier:
    """Approach 3's frontier with intervals from `draws` (none when empty; no frontier at all without
    `approach3`, for an unreliable fit) and Approach 2 on (n, d, y)."""
    boot = draws if all(k in draws for k in ("A", "B", "alpha", "beta")) else None
    c_mid = ladder_flops(n, d)

    def derived(fn) -> Estimate | None:
        if not approach3:
            return None
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            # A degenerate draw (alpha + beta -> 0) gives inf or NaN: left out of the interval.
            return _estimate(fn(params), None if boot is None else fn(boot), level)

    profiles = tuple(isoflop_profiles(n, d, y, level))
    return LadderFrontier(dict(params), a=derived(lambda p: exponents(p)[0]), b=derived(lambda p: exponents(p)[1]),
                          flops_ladder=c_mid, n_opt_ladder=derived(lambda p: chinchilla_frontier(p, c_mid)[0]),
                          ratio_ladder=derived(lambda p: tokens_per_param(p, c_mid)),
                          ratio_chinchilla=derived(lambda p: tokens_per_param(p, CHINCHILLA_FLOPS)),
                          profiles=profiles, approach2=isoflop_exponent(list(profiles), level))


def _row(base: dict, law: str, param: str, e: Estimate, **over) -> dict:
    method = base.get("ci_method", "none") if np.isfinite(e.low) else "none"
    return {**base, "law": law, "param": param, "estimate": e.value, "ci_low": e.low, "ci_high": e.high,
            "ci_method": method, "n_boot_ok": e.n_ok, **over}


def frontier_rows(base: dict, f: LadderFrontier) -> list[dict]:
    """fits.parquet rows of the frontier: Approach 3's when the fit is reliable, Approach 2's when it
    has an exponent; `base` holds the fit's own columns (task, metric, filter, ci_level, ci_method,
    n_sizes, transform, note, goodness, reliable)."""
    rows = [] if f.a is None else _approach3_rows(base, f)
    if f.approach2 is not None:
        rows += isoflop_rows(base, f.approach2, f.profiles)
    return rows


def _approach3_rows(base: dict, f: LadderFrontier) -> list[dict]:
    ratio_note = {"note": f"D_opt / N_opt at C_ladder = {f.flops_ladder:.3g} FLOPs (geometric middle of the "
                          "points' 6ND range)"}
    rows = [_row(base, FRONTIER_LAW, "a", f.a, note="N_opt ∝ C^a, a = beta / (alpha + beta)"),
            _row(base, FRONTIER_LAW, "b", f.b, note="D_opt ∝ C^b, b = alpha / (alpha + beta)"),
            _row(base, FRONTIER_LAW, "C_ladder", Estimate(f.flops_ladder), note=ratio_note["note"]),
            _row(base, FRONTIER_LAW, "N_opt_at_C_ladder", f.n_opt_ladder, **ratio_note),
            _row(base, FRONTIER_LAW, "tokens_per_param_at_C_ladder", f.ratio_ladder, **ratio_note),
            _row(base, FRONTIER_LAW, "C_chinchilla", Estimate(CHINCHILLA_FLOPS),
                 note="Chinchilla's budget, 6 x 70e9 x 1.4e12 FLOPs"),
            _row(base, FRONTIER_LAW, "tokens_per_param_at_C_chinchilla", f.ratio_chinchilla,
                 note="D_opt / N_opt at C_chinchilla (an extrapolation beyond the ladder)")]
    return rows


def isoflop_rows(base: dict, e: Exponent, profiles) -> list[dict]:
    """Approach 2's a, b = 1 - a (D = C / 6N), and N_opt and D_opt / N_opt at the profiles' middle C;
    the goodness columns are those of the log-log line through the vertices."""
    x = np.log10([p.flops for p in profiles if np.isfinite(p.n_opt)])
    y = np.log10([p.n_opt for p in profiles if np.isfinite(p.n_opt)])
    resid = y - (e.log10_k + e.a * x)
    rss, tss = float(resid @ resid), float(((y - y.mean()) ** 2).sum())
    # Its own verdict: Approach 2 does not lean on the L(N, D) law whose reliability `base` carries.
    line = dict(ci_method=e.method, n_points=int(x.size), dof=int(x.size - 2), rss=rss,
                rmse=float(np.sqrt(rss / x.size)), r2=1.0 - rss / tss if tss > 0 else float("nan"), reliable=True)
    c_mid = 10.0 ** e.log10_flops_mid
    n_mid = float(e.n_opt(c_mid))
    mid_note = f"at C_mid = {c_mid:.3g} FLOPs (the profiles' geometric middle), from the line through the vertices"
    spread = 10.0 ** e.log10_n_opt_mid_half
    return [_row(base, ISOFLOP_LAW, "a", Estimate(e.a, e.low, e.high), note=profiles_note(profiles), **line),
            _row(base, ISOFLOP_LAW, "b", Estimate(1.0 - e.a, 1.0 - e.high, 1.0 - e.low),
                 note="D_opt ∝ C^b, b = 1 - a (D = C / 6N)", **line),
            _row(base, ISOFLOP_LAW, "C_mid", Estimate(c_mid), note=mid_note, **line),
            _row(base, ISOFLOP_LAW, "N_opt_at_C_mid", Estimate(n_mid, n_mid / spread, n_mid * spread),
                 note=mid_note, **line),
            _row(base, ISOFLOP_LAW, "tokens_per_param_at_C_mid", Estimate(*e.tokens_per_param_mid()),
                 note=mid_note, **line)]


def profiles_note(profiles) -> str:
    """One clause per IsoFLOP profile: its C, points, and vertex or why it has none."""
    parts = []
    for p in profiles:
        where = f"N_opt {p.n_opt:.3g}" if np.isfinite(p.n_opt) else p.reason
        parts.append(f"C {p.flops:.3g}: {p.n.size} points, {np.unique(p.n).size} sizes, {where}")
    return "IsoFLOP profiles: " + "; ".join(parts)


def residual_rows(base: dict, trends) -> list[dict]:
    """The residual checks' numbers of every L(N, D) fit (fit.residuals), reliable or not."""
    rows = []
    for t in trends:
        v = t.variable
        if v == "NxD":
            note = t.caveat() or "one slope in D fits every size"
            rows += [_row(base, RESIDUALS_LAW, "interaction_f", Estimate(t.f), note=note),
                     _row(base, RESIDUALS_LAW, "interaction_p", Estimate(t.p), note=note),
                     _row(base, RESIDUALS_LAW, "interaction_share", Estimate(t.share), note=note)]
            continue
        note = t.caveat() or f"no trend with {v}"
        rows += [_row(base, RESIDUALS_LAW, f"spearman_rho_{v}", Estimate(t.rho), note=note),
                 _row(base, RESIDUALS_LAW, f"spearman_p_{v}", Estimate(t.p_rho), note=note),
                 _row(base, RESIDUALS_LAW, f"kruskal_eps2_{v}", Estimate(t.eps2), note=note),
                 _row(base, RESIDUALS_LAW, f"kruskal_p_{v}", Estimate(t.p_groups), note=note)]
    return rows
