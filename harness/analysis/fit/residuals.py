"""Do an L(N, D) fit's log residuals still depend on N or on D? Two tests per variable.

(1) A monotone trend: Spearman's rho of the residuals against log N (log D). Flagged at |rho| >
    MIN_RHO with p < MAX_P_RHO: the p-value guards small ladders (with 6 points |rho| > 0.5 happens
    by chance), the |rho| floor large ones (240 points make rho = 0.15 "significant" while it
    explains 2% of the residuals' rank variance). A fitted law leaves little of such a trend, though:
    E + A / N^alpha (with alpha free) follows any smooth monotone drift in N, and the same holds
    for D. On the 6 x 6 ladder of tests/unit/analysis/test_frontier.py a warm-up penalty ~ 1/D (10%
    at the shortest budget) leaves |rho| < 0.1 while it moves N_opt's exponent from 0.51 to 0.60:
    what the law absorbs, no residual check can see.
(2) Any dependence: a Kruskal-Wallis test of the residuals across groups of N (D): the distinct
    values when there are at most MAX_GROUPS, else MAX_GROUPS groups of equal count in log N. It sees
    what (1) cannot: a size, or a token budget, whose points all sit off the law (a kink the law
    bends around, e.g. the shortest runs hurt by a fixed warm-up). Flagged at p < MAX_P_GROUPS with
    epsilon^2 = H / (points - 1) > MIN_EPS2 (the share of the residuals' rank variance the groups
    explain; a correct law gives (groups - 1) / (points - 1) on average, 0.14 for 6 x 6 points).
    Epoch's 240 Chinchilla points give epsilon^2 0.14 against D with p 3e-6: a real but small
    structure, which the floor keeps from condemning the reference data.
(3) An interaction of N and D: the residuals' slope in log D fitted per size (sizes with >= 3 token
    counts and >= 4 points), tested against one slope shared by all sizes (an F-test of the nested
    linear models, each size with its own intercept). Tests (1) and (2) pool the sizes, so they miss
    the small sizes' residuals rising with D while the large sizes' fall: the sizes' slopes cancel.
    That is the embedded ladder's misfit (zoo/README.md: small sizes flatten in D sooner than one
    beta allows; F 27, p 1e-9, the per-size slopes explain 78% of what one shared slope leaves).
    Flagged at p < MAX_P_INTERACTION with that share above MIN_SHARE; Epoch's Chinchilla
    points give p 0.14, and 40 noisy synthetic 6 x 6 ladders of a correct law none below 0.01.
Neither counts when the groups' median residuals span less than AMPLITUDE_FLOOR in log loss: the
fit's own Huber loss treats log residuals below 1e-3 as noise (harness.analysis.fit.chinchilla), and
a noise-free ladder would otherwise be flagged on the optimiser's last digits.
A flag makes the fit unreliable (fit.reliability): residuals that follow N or D mean alpha or beta
was fitted to a shape the law does not have, and the frontier is made of those exponents. On the
ladder above, the shortest budget's runs 3% worse moved N_opt's exponent from 0.51 to 0.56 while R²
stayed 0.999 and the residual SD ratio of check (b) stayed below its limit: only this check fails it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

MIN_RHO, MAX_P_RHO = 0.5, 0.05
# Four tests per fit (two variables x two tests): p < 0.01 keeps a correct law's false flags near 4%.
MAX_P_GROUPS, MIN_EPS2 = 0.01, 0.25
MAX_GROUPS = 6
AMPLITUDE_FLOOR = 1e-3
MAX_P_INTERACTION, MIN_SHARE = 0.01, 0.25
MIN_TOKEN_COUNTS = 3  # a size's slope in log D needs 3 budgets to leave a residual of its own


@dataclass(frozen=True)
class Trend:
    """How the log residuals depend on one variable (N or D)."""

    variable: str  # "N" or "D"
    rho: float  # Spearman's rho against log(variable)
    p_rho: float
    eps2: float  # Kruskal-Wallis epsilon^2 across groups of the variable
    p_groups: float
    n_groups: int
    amplitude: float  # range of the groups' median log residuals

    @property
    def monotone(self) -> bool:
        return abs(self.rho) > MIN_RHO and self.p_rho < MAX_P_RHO and self.amplitude > AMPLITUDE_FLOOR

    @property
    def grouped(self) -> bool:
        return self.eps2 > MIN_EPS2 and self.p_groups < MAX_P_GROUPS and self.amplitude > AMPLITUDE_FLOOR

    @property
    def flagged(self) -> bool:
        return self.monotone or self.grouped

    def caveat(self) -> str:
        """One clause for the report; "" when not flagged."""
        if not self.flagged:
            return ""
        what = (f"trend with {self.variable} (Spearman rho {self.rho:+.2f}, p {self.p_rho:.2g})" if self.monotone
                else f"depend on {self.variable} (Kruskal-Wallis over {self.n_groups} groups: epsilon² "
                     f"{self.eps2:.2f}, p {self.p_groups:.2g})")
        return f"log residuals {what}: the law misses how loss changes with {self.variable}"


def groups_of(values) -> np.ndarray:
    """Group labels: one per distinct value when there are at most MAX_GROUPS, else MAX_GROUPS
    groups of (near) equal count by rank.

    >>> groups_of([1, 1, 2, 3]).tolist()
    [0, 0, 1, 2]
    >>> groups_of(np.arange(12.0)).tolist()
    [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    """
    v = np.asarray(values, dtype=float)
    distinct, labels = np.unique(v, return_inverse=True)
    if distinct.size <= MAX_GROUPS:
        return labels
    ranks = stats.rankdata(v, method="min") - 1  # ties share a group
    return np.minimum((ranks * MAX_GROUPS) // v.size, MAX_GROUPS - 1).astype(int)


def trend(variable: str, x, log_resid) -> Trend:
    """Both tests of the module docstring for the residuals against one variable x (> 0)."""
    lx, r = np.log(np.asarray(x, dtype=float)), np.asarray(log_resid, dtype=float)
    nan = float("nan")
    if np.ptp(lx) == 0 or np.ptp(r) == 0:
        return Trend(variable, nan, nan, nan, nan, 1, 0.0)
    rho, p_rho = stats.spearmanr(lx, r)
    labels = groups_of(lx)
    parts = [r[labels == g] for g in np.unique(labels)]
    medians = [float(np.median(p)) for p in parts]
    eps2 = p_groups = nan
    if len(parts) >= 2:
        h, p_groups = stats.kruskal(*parts)
        eps2 = float(h) / (r.size - 1)
    return Trend(variable, float(rho), float(p_rho), eps2, float(p_groups), len(parts), max(medians) - min(medians))


@dataclass(frozen=True)
class Interaction:
    """Whether the log residuals' slope in log D differs between sizes (test (3))."""

    variable: str  # "NxD"
    f: float
    p: float
    share: float  # of the residual sum of squares one shared slope leaves, what per-size slopes explain
    slopes: tuple[float, ...]  # per size, ascending N: change of the log residual per decade of D
    amplitude: float  # spread of the slopes times the median decades of D a size spans

    @property
    def flagged(self) -> bool:
        return self.p < MAX_P_INTERACTION and self.share > MIN_SHARE and self.amplitude > AMPLITUDE_FLOOR

    def caveat(self) -> str:
        if not self.flagged:
            return ""
        return (f"log residuals change with D differently for different sizes (per decade of D: "
                f"{self.slopes[0]:+.3f} at the smallest size, {self.slopes[-1]:+.3f} at the largest; F-test "
                f"p {self.p:.2g}): the law misses an interaction of N and D")


def interaction(n, d, log_resid) -> Interaction | None:
    """Test (3) of the module docstring; None with fewer than 3 sizes that have a slope of their own."""
    n, r = np.asarray(n, dtype=float), np.asarray(log_resid, dtype=float)
    x = np.log10(np.asarray(d, dtype=float))
    sizes = [s for s in np.unique(n) if (n == s).sum() >= 4 and np.unique(x[n == s]).size >= MIN_TOKEN_COUNTS]
    if len(sizes) < 3:
        return None
    keep = np.isin(n, sizes)
    n, x, r = n[keep], x[keep], r[keep]
    own = [(n == s).astype(float) for s in sizes]
    centred = [m * (x - x[m > 0].mean()) for m in own]
    common = np.column_stack(own + [sum(centred)])
    apart = np.column_stack(own + centred)
    rss_common, rss_apart = (float(np.sum((r - m @ np.linalg.lstsq(m, r, rcond=None)[0]) ** 2)) for m in (common, apart))
    dof = r.size - 2 * len(sizes)
    if dof < 1 or rss_common <= 0:
        return None
    f = (rss_common - rss_apart) / (len(sizes) - 1) / max(rss_apart / dof, 1e-300)
    slopes = tuple(float(np.polyfit(x[n == s], r[n == s], 1)[0]) for s in sizes)
    span = float(np.median([np.ptp(x[n == s]) for s in sizes]))
    return Interaction("NxD", float(f), float(stats.f.sf(f, len(sizes) - 1, dof)), 1.0 - rss_apart / rss_common,
                       slopes, (max(slopes) - min(slopes)) * span)


def residual_trends(n, d, log_resid) -> tuple[Trend | Interaction, ...]:
    """The N and D trends of an L(N, D) fit's log residuals log(measured) - log(fitted), and their
    N x D interaction when at least 3 sizes have a slope in D of their own."""
    both = interaction(n, d, log_resid)
    return (trend("N", n, log_resid), trend("D", d, log_resid)) + ((both,) if both is not None else ())
