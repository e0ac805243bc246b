"""Chinchilla Approach 2: IsoFLOP profiles. Loss against N at fixed compute C = 6 N D, a parabola per
profile, its minimum N_opt(C), and N_opt ∝ C^a across profiles (Hoffmann et al. 2022, section 3.2).

Hoffmann et al. train several sizes at each of nine fixed budgets and fit a parabola to loss against
log N per budget; the vertex is that budget's compute-optimal size, and a power law through the
vertices gives a = 0.49 (their Table 2; Approach 1 gave 0.50, Approach 3 0.46). Here the budgets are
found in the measured points themselves: a ladder of sizes x token budgets puts many (N, D) pairs
on (or near) the same C, and those form a profile. Every point must be a finished training run
(its own schedule, e.g. a WSD cooldown, Hägele et al. 2024); a mid-run checkpoint is not on the
profile of its C. Pure numpy/scipy: the plot and the report draw from what these functions return.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from harness.analysis.fit.chinchilla import chinchilla_loss

# Points within this many decades of a profile's C belong to it. Digitised or rounded budgets scatter
# by a few hundredths of a decade (Epoch's points of Hoffmann et al.'s Figure 4: +-0.03); 0.05 keeps
# Hoffmann's budgets (at least 0.2 decades apart) separate while a point's loss moves by much less
# than the depth of its profile (on the frontier loss falls ~0.2 per decade of C at Hoffmann et al.'s scales).
TOLERANCE_DEX = 0.05
MIN_SIZES = 3  # a parabola has three coefficients


@dataclass(frozen=True)
class Profile:
    """One IsoFLOP profile: the points near one compute budget and the parabola through them.

    The parabola is loss = c0 + c1 u + c2 u^2 in u = log10 N - u0 (u0 the points' mean log10 N, for a
    well-conditioned fit); its vertex is the measured compute-optimal size.
    """

    flops: float  # the profile's C: the geometric mean of its points' 6 N D
    n: np.ndarray  # sizes of its points
    loss: np.ndarray
    coef: tuple[float, float, float]  # c0, c1, c2
    u0: float
    n_opt: float  # the vertex, NaN when the profile has no minimum inside its sizes (see reason)
    n_opt_low: float  # the vertex's interval (delta method, t); NaN with no residual degree of freedom
    n_opt_high: float
    reason: str = ""  # why no vertex: "" when there is one
    se: float = float("nan")  # the vertex's standard error in log10 N; NaN with no residual degree of freedom

    def predict(self, n) -> np.ndarray:
        u = np.log10(np.asarray(n, dtype=float)) - self.u0
        c0, c1, c2 = self.coef
        return c0 + c1 * u + c2 * u * u


@dataclass(frozen=True)
class Exponent:
    """N_opt = k C^a through the profiles' vertices, a with its interval."""

    a: float
    low: float
    high: float
    log10_k: float
    n_profiles: int
    method: str  # how the interval was made, or why there is none
    # The line at the profiles' middle (mean log10 C), where it is best pinned: log10 N_opt there and
    # the half-width of its interval (same error model as a's; NaN when a has none).
    log10_flops_mid: float = float("nan")
    log10_n_opt_mid_half: float = float("nan")

    def n_opt(self, flops) -> np.ndarray:
        return 10.0 ** (self.log10_k + self.a * np.log10(np.asarray(flops, dtype=float)))

    def tokens_per_param_mid(self) -> tuple[float, float, float]:
        """D_opt / N_opt = C / (6 N_opt^2) at the profiles' middle C: (estimate, low, high)."""
        c = 10.0 ** self.log10_flops_mid
        n = float(self.n_opt(c))
        ratio = c / (6.0 * n * n)
        spread = 10.0 ** (2.0 * self.log10_n_opt_mid_half)  # N_opt up by a factor f: the ratio down by f^2
        return ratio, ratio / spread, ratio * spread


def group_budgets(flops, tolerance_dex: float = TOLERANCE_DEX) -> list[np.ndarray]:
    """Indices of the points that share a compute budget, densest budget first.

    Mode-seeking, so stray points do not drag a budget: take the point with the most others within
    `tolerance_dex` decades of its C, make them a group, remove them, repeat.

    >>> [g.tolist() for g in group_budgets([1e19, 1.05e19, 3e19, 9.9e18, 1e21])]
    [[0, 1, 3], [2], [4]]
    """
    log_c = np.log10(np.asarray(flops, dtype=float))
    left = np.arange(log_c.size)
    groups = []
    while left.size:
        near = np.abs(log_c[left][:, None] - log_c[left][None, :]) <= tolerance_dex
        centre = int(np.argmax(near.sum(axis=1)))  # the first of the densest, in input order
        members = left[near[centre]]
        groups.append(np.sort(members))
        left = left[~near[centre]]
    return groups


def fit_profile(n, loss, flops: float, level: float = 0.95) -> Profile:
    """Least-squares parabola of loss in log10 N; its vertex and, with >= 4 points, the vertex's
    interval from the coefficients' covariance (delta method, t quantile on the residual degrees of
    freedom). A vertex outside the profile's sizes, or a parabola open downwards, is no minimum:
    the minimum is not measured, and extrapolating a parabola past its points says nothing."""
    n, loss = np.asarray(n, dtype=float), np.asarray(loss, dtype=float)
    u_raw = np.log10(n)
    u0 = float(u_raw.mean())
    u = u_raw - u0
    design = np.stack([np.ones_like(u), u, u * u], axis=1)
    coef, *_ = np.linalg.lstsq(design, loss, rcond=None)
    c0, c1, c2 = (float(v) for v in coef)
    nan = float("nan")
    if not c2 > 0:
        return Profile(flops, n, loss, (c0, c1, c2), u0, nan, nan, nan, "no minimum (the profile is not convex)")
    vertex = -c1 / (2 * c2)
    if not u.min() <= vertex <= u.max():
        side = "below the smallest" if vertex < u.min() else "above the largest"
        return Profile(flops, n, loss, (c0, c1, c2), u0, nan, nan, nan, f"minimum {side} size measured")
    # Delta method: d vertex / d (c0, c1, c2); times the noise variance this is the vertex's variance.
    grad = np.array([0.0, -1.0 / (2 * c2), c1 / (2 * c2 * c2)])
    leverage = float(max(grad @ np.linalg.pinv(design.T @ design) @ grad, 0.0))  # per unit noise variance
    resid, dof = loss - design @ coef, loss.size - 3
    se = float(np.sqrt(float(resid @ resid) / dof * leverage)) if dof >= 1 else nan
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se if dof >= 1 else nan
    return Profile(flops, n, loss, (c0, c1, c2), u0, float(10 ** (u0 + vertex)), 10 ** (u0 + vertex - half),
                   10 ** (u0 + vertex + half), se=se)


def isoflop_profiles(n, d, loss, level: float = 0.95, tolerance_dex: float = TOLERANCE_DEX) -> list[Profile]:
    """Every budget shared by >= MIN_SIZES distinct sizes, as a fitted profile, by increasing C."""
    n, d, loss = (np.asarray(v, dtype=float) for v in (n, d, loss))
    flops = 6.0 * n * d
    out = []
    for idx in group_budgets(flops, tolerance_dex):
        if np.unique(n[idx]).size >= MIN_SIZES:
            c = float(10 ** np.log10(flops[idx]).mean())
            out.append(fit_profile(n[idx], loss[idx], c, level))
    return sorted(out, key=lambda p: p.flops)


def isoflop_exponent(profiles: list[Profile], level: float = 0.95) -> Exponent | None:
    """a of N_opt ∝ C^a by least squares in log-log through the profiles with a vertex (as Hoffmann
    et al. do); None with fewer than 2.

    With >= 3 profiles the interval is t (profiles - 2 degrees of freedom) times the slope's HC3
    standard error (MacKinnon & White 1985), which does not assume every vertex equally precise: a
    3-point profile's vertex is far noisier than a 9-point one's. The textbook (equal-variance)
    error covered the true exponent in 84% of 200 simulated 6 x 6 and 9 x 9 ladders at 95%, HC3 in
    94-95%. (Weighting the vertices by their delta-method variances did as well on those ladders but
    moved a by 0.08 on Epoch's Chinchilla points when the 5 highest losses were dropped: it trusts a
    noise model that the wide, digitised real profiles do not follow.) With 2 profiles the interval
    comes from the two vertices' own errors (normal, independent), when both have one; else none."""
    ok = [p for p in profiles if np.isfinite(p.n_opt)]
    if len(ok) < 2:
        return None
    x = np.log10([p.flops for p in ok])
    y = np.log10([p.n_opt for p in ok])
    slope, intercept = (float(v) for v in np.polyfit(x, y, 1))
    nan = float("nan")
    x_mid, mid_half = float(x.mean()), nan
    if len(ok) >= 3:
        t = float(stats.t.ppf(0.5 + level / 2, len(ok) - 2))
        cov = _hc3_cov(x, y)
        half = t * float(np.sqrt(max(cov[1, 1], 0.0)))
        at_mid = np.array([1.0, x_mid])
        mid_half = t * float(np.sqrt(max(at_mid @ cov @ at_mid, 0.0)))
        method = f"least squares over {len(ok)} profiles, HC3 error"
    elif all(np.isfinite(p.se) for p in ok):
        z = float(stats.norm.ppf(0.5 + level / 2))
        half = z * float(np.hypot(ok[0].se, ok[1].se)) / abs(x[1] - x[0])
        mid_half = z * float(np.hypot(ok[0].se, ok[1].se)) / 2  # the line at the middle: the vertices' mean
        method = "two profiles: from their vertices' errors"
    else:
        half, method = nan, "two profiles without vertex errors: no interval"
    return Exponent(slope, slope - half, slope + half, intercept, len(ok), method, x_mid, mid_half)


def _hc3_cov(x, y) -> np.ndarray:
    """Heteroscedasticity-consistent (HC3) covariance of the least-squares (intercept, slope) of y on x."""
    design = np.stack([np.ones_like(x), x], axis=1)
    inv = np.linalg.inv(design.T @ design)
    resid = y - design @ (inv @ design.T @ y)
    hat = np.einsum("ij,jk,ik->i", design, inv, design)
    omega = (resid / np.maximum(1.0 - hat, 1e-12)) ** 2
    return inv @ (design.T * omega) @ design @ inv


def law_at_compute(params: dict[str, float], flops: float, n) -> np.ndarray:
    """The fitted L(N, D) along the IsoFLOP line D = C / (6 N): Approach 3's view of a profile."""
    n = np.asarray(n, dtype=float)
    return chinchilla_loss(params, n, flops / (6.0 * n))
