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


def residual_trends(n, d, log_resid) -> tuple[Trend, Trend]:
    """The (N, D) trends of an L(N, D) fit's log residuals log(measured) - log(fitted)."""
    return trend("N", n, log_resid), trend("D", d, log_resid)
