"""plots/<task>_isoflop.png: Approach 2's IsoFLOP profiles against Approach 3's fitted law, with the
two frontiers, and the L(N, D) fit's log residuals against N and against D (one colour per size there,
so an N x D interaction shows as slopes that differ).

Drawn from what the analysis computed (FitOutcome.frontier, .trends), never refitted. A fit that is
not reliable gets no law lines and no Approach 3 frontier; its profiles keep their parabolas and
minima (Approach 2) when its points are separate runs, else only the points and residuals.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.analysis.fit.chinchilla import chinchilla_frontier, chinchilla_loss
from harness.analysis.isoflop import isoflop_profiles, law_at_compute
from harness.analysis.plot import UNITS, X_LABEL, _save


def isoflop_plot(plt, path: Path, o) -> Path:
    """Left: loss against N per compute budget; middle and right: log residuals against N and D."""
    s, p = o.series, o.params
    known = np.isfinite(s.d) & (s.d > 0)
    n, d, y = s.n[known], s.d[known], s.y[known]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5), layout="constrained", gridspec_kw={"width_ratios": [2, 1, 1]})
    profiles = o.frontier.profiles if o.frontier is not None else tuple(isoflop_profiles(n, d, y))
    _profiles_panel(axes[0], s, p, profiles, o.frontier)
    resid = np.log(y) - np.log(chinchilla_loss(p, n, d))
    trends = {t.variable: t for t in o.trends}
    _residual_panel(axes[1], n, resid, trends.get("N"), X_LABEL)
    _residual_panel(axes[2], d, resid, trends.get("D"), "training tokens D", points=False)
    _by_size(axes[2], n, d, resid, trends.get("NxD"))
    if o.frontier is None:
        fig.suptitle("UNRELIABLE L(N, D) fit: no parabola minima, no frontier (see the report)", fontsize=10,
                     color="C3")
    elif o.frontier.a is None:
        fig.suptitle("UNRELIABLE L(N, D) fit: no law lines, no Approach 3 frontier; Approach 2's parabolas and "
                     "minima need no law (see the report)", fontsize=10, color="C3")
    return _save(plt, fig, path)


def _profiles_panel(ax, s, p, profiles, frontier) -> None:
    """Measured points per budget; for a reliable fit also each parabola, the law along the same C,
    the parabola minima (Approach 2) and the law's N_opt(C) (Approach 3)."""
    import matplotlib
    from matplotlib.colors import LogNorm

    cmap = matplotlib.colormaps["viridis"]
    flops = [prof.flops for prof in profiles] or [1.0]
    norm = LogNorm(min(flops), max(flops) * (1 + 1e-9))  # one colour per budget, by its C
    for prof in profiles:
        colour = cmap(norm(prof.flops))
        ax.plot(prof.n, prof.loss, "o", color=colour, ms=5)
        if frontier is None:
            continue
        if frontier.a is not None:
            wide = np.geomspace(prof.n.min() / 1.5, prof.n.max() * 1.5, 80)
            ax.plot(wide, law_at_compute(p, prof.flops, wide), "--", color=colour, alpha=0.6, lw=1)
        inside = np.geomspace(prof.n.min(), prof.n.max(), 60)
        ax.plot(inside, prof.predict(inside), "-", color=colour, lw=1.5)
        if np.isfinite(prof.n_opt):
            xerr = None
            if np.isfinite(prof.n_opt_low):
                xerr = [[prof.n_opt - prof.n_opt_low], [prof.n_opt_high - prof.n_opt]]
            ax.errorbar([prof.n_opt], prof.predict([prof.n_opt]), xerr=xerr, fmt="*", ms=13, color=colour,
                        mec="k", capsize=3, zorder=4)
    if frontier is not None and profiles:
        _frontiers(ax, p, profiles, frontier)
    ax.set_xscale("log")
    if profiles:  # a vertex interval far wider than the sizes would squash the profiles
        sizes = np.concatenate([prof.n for prof in profiles])
        ax.set_xlim(sizes.min() / 2, sizes.max() * 2)
        ax.figure.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="compute C = 6ND (FLOPs)")
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(UNITS.get(s.metric, s.metric))
    law_lines = frontier is not None and frontier.a is not None
    ax.set_title(f"{s.task}: IsoFLOP profiles (solid: parabola" + ("; dashed: L(N, D) at the same C)" if law_lines
                                                                   else ")"), fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _frontiers(ax, p, profiles, frontier) -> None:
    flops = np.array([prof.flops for prof in profiles])
    if frontier.a is not None:
        n3 = np.asarray(chinchilla_frontier(p, flops)[0])
        l3 = np.array([law_at_compute(p, c, [m])[0] for c, m in zip(flops, n3)])
        ax.plot(n3, l3, "kx-", lw=1, ms=8, label=f"Approach 3 N_opt(C) ∝ C^{frontier.a.value:.3f}")
    vertices = [(prof.n_opt, prof.predict([prof.n_opt])[0]) for prof in profiles if np.isfinite(prof.n_opt)]
    if vertices:
        a2 = frontier.approach2
        label = "Approach 2: parabola minima" + (f" (N_opt ∝ C^{a2.a:.3f})" if a2 is not None else "")
        ax.plot(*zip(*vertices), ":", color="0.3", lw=1.2, label=label)


def _by_size(ax, n, d, resid, interaction) -> None:
    """Against D, one colour and line per size: an N x D interaction (fit.residuals test (3)) shows
    as lines of different slopes, which the pooled trend cannot."""
    for i, size in enumerate(np.unique(n)):
        sel = n == size
        order = np.argsort(d[sel])
        ax.plot(d[sel][order], resid[sel][order], "o-", color=f"C{i % 10}", ms=4, lw=0.8, label=f"N = {size:.3g}")
    ax.legend(fontsize=7)
    if interaction is not None:
        verdict = "FLAGGED" if interaction.flagged else "one slope fits"
        ax.set_title(f"{ax.get_title()}\nslopes per size: F {interaction.f:.3g} (p {interaction.p:.2g}): {verdict}",
                     fontsize=9, color="C3" if interaction.flagged or ax.title.get_color() == "C3" else "black")


def _residual_panel(ax, x, resid, trend, label: str, points: bool = True) -> None:
    ax.axhline(0.0, color="0.5", lw=1)
    if points:
        ax.plot(x, resid, "o", color="C0", ms=4)
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("log residual: log(measured) − log(fit)")
    if trend is None:
        return
    verdict = "FLAGGED" if trend.flagged else "no trend"
    ax.set_title(f"against {trend.variable}: Spearman ρ {trend.rho:+.2f} (p {trend.p_rho:.2g}),\n"
                 f"Kruskal-Wallis ε² {trend.eps2:.2f} (p {trend.p_groups:.2g}): {verdict}", fontsize=9,
                 color="C3" if trend.flagged else "black")
