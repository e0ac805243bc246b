"""Figures for `harness analyze`: drawn from the measured points and the fits, never refitted.

Curves come from the fit's parameters and the bootstrap band computed at analysis time (the same
values bands.parquet holds); matplotlib runs on the Agg backend (files only, no display). Each PNG
is written to a temporary file in plots/ and renamed, so a reader never sees half a figure.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from harness.analysis.fit.chinchilla import chinchilla_frontier, chinchilla_loss
from harness.files import atomic_path

UNITS = {
    "bits_per_byte": "bits per byte",
    "nll_per_token": "loss (nats per token)",
    "acc": "accuracy (fraction correct)",
    "acc_norm": "length-normalised accuracy",
    "exact_match": "exact match (fraction correct)",
    "target_loglik": "log-prob of the target (nats)",
    "brier": "Brier score (lower is better)",
    "edit_distance": "edit distance (characters)",
}
X_LABEL = "non-embedding parameters N"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 11, "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 9})
    return plt


def _save(plt, fig, path: Path) -> Path:
    """Write the figure to `path` atomically (`results.store.atomic_path`); close it."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(parts)).strip("_")


def make_all(plot_dir: Path, outcomes, verdicts, backtests) -> list[Path]:
    """Write every figure; returns their paths (empty when nothing was fitted)."""
    plot_dir.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    paths = []
    chosen = backtests[backtests["chosen"]] if len(backtests) else backtests
    bt = {(r.task, r.metric): r for r in chosen.itertuples()}
    for o in outcomes:
        s = o.series
        if o.law == "power_law" and s.metric in ("bits_per_byte", "nll_per_token"):
            paths.append(_loss_plot(plt, plot_dir / f"{_slug('loss', s.task, s.metric)}.png", o, bt.get((s.task, s.metric))))
        elif o.law == "chinchilla":
            from harness.analysis.plot_isoflop import isoflop_plot  # it draws with this module's helpers

            paths.append(_chinchilla_plot(plt, plot_dir / f"{_slug('tokens', s.task, s.metric)}.png", o))
            paths.append(isoflop_plot(plt, plot_dir / f"{_slug(s.task)}_isoflop.png", o))
    for v in verdicts:
        sig = next((o for o in outcomes if o.law == "sigmoid" and o.series.task == v.task
                    and o.series.metric == v.discrete_metric), None)
        twins = [o for o in outcomes if o.law == "power_law" and o.series.task == v.task and o.series.metric in v.twin_statistics]
        path = plot_dir / f"{_slug('emergence', v.task, v.discrete_metric)}.png"
        paths.append(_emergence_plot(plt, path, v, sig, twins, bt.get((v.task, v.discrete_metric))))
    return paths


def _plain_log_ticks(axis) -> None:
    """Losses span less than a decade: label log-axis ticks as plain numbers, not 3x10^0."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0), numticks=12))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.3g}"))
    axis.set_minor_formatter(NullFormatter())


def _points(ax, s, label: str, color: str = "C0") -> None:
    """Measured values with their 95% paired-bootstrap error bars when resamples exist."""
    yerr = None
    if s.boot is not None:
        lo, hi = np.nanpercentile(s.boot, [2.5, 97.5], axis=0)
        yerr = np.vstack([np.maximum(s.y - lo, 0), np.maximum(hi - s.y, 0)])
    ax.errorbar(s.n, s.y, yerr=yerr, fmt="o", color=color, capsize=3, label=label, zorder=3)


def _curve(ax, o, label: str, color: str = "C1") -> None:
    band = o.band
    ax.plot(band["n"], band["estimate"], "-", color=color, label=label)
    if np.isfinite(band["low"]).any():
        ax.fill_between(band["n"], band["low"], band["high"], color=color, alpha=0.2, label="95% bootstrap band")


def _loss_plot(plt, path: Path, o, backtest) -> Path:
    s, p = o.series, o.params
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    _points(ax, s, "measured (final checkpoint)")
    _curve(ax, o, f"fit E + A/N^α: E={p['E']:.3g}, α={p['alpha']:.3g}")
    _prediction(ax, backtest)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(UNITS.get(s.metric, s.metric) + " (log scale)")
    ax.set_title(f"{s.task}: {s.metric} against size")
    ax.legend()
    return _save(plt, fig, path)


def _prediction(ax, backtest) -> None:
    """The chosen method's back-test prediction of the held-out largest size, with its interval."""
    if backtest is None:
        return
    lo, hi = backtest.pi_low, backtest.pi_high
    yerr = None if not np.isfinite(lo) else [[backtest.predicted - lo], [hi - backtest.predicted]]
    level = f"{100 * backtest.pi_level:.0f}% PI, " if yerr is not None else ""
    ax.errorbar([backtest.n_params * 1.08], [backtest.predicted], yerr=yerr, fmt="s", color="C3", capsize=4,
                label=f"predicted from smaller sizes ({backtest.method}; {level}error {backtest.error:+.3g})", zorder=4)


def _chinchilla_plot(plt, path: Path, o) -> Path:
    """Left: loss against tokens per size with the L(N, D) curves; right: iso-loss contours and frontier."""
    s, p = o.series, o.params
    known = np.isfinite(s.d)
    n, d, y = s.n[known], s.d[known], s.y[known]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    _loss_against_tokens(left, s, p, n, d, y)
    _iso_loss_contours(right, s, p, n, d, frontier=o.reliable)
    if not o.reliable:
        fig.suptitle("UNRELIABLE L(N, D) fit: no compute-optimal frontier (see the report)", fontsize=10, color="C3")
    return _save(plt, fig, path)


def _loss_against_tokens(ax, s, p, n, d, y) -> None:
    d_grid = np.geomspace(d.min() / 2, d.max() * 2, 80)
    for i, size in enumerate(np.unique(n)):
        sel = n == size
        ax.plot(d[sel], y[sel], "o", color=f"C{i % 10}", label=f"N = {size:.3g}")
        ax.plot(d_grid, chinchilla_loss(p, size, d_grid), "-", color=f"C{i % 10}", alpha=0.7)
    ax.set_xscale("log")
    ax.set_xlabel("training tokens D")
    ax.set_ylabel(UNITS.get(s.metric, s.metric))
    ax.set_title(f"{s.task}: loss against tokens (lines: L(N, D) fit)")
    ax.legend(ncol=2)


def _iso_loss_contours(ax, s, p, n, d, frontier: bool = True) -> None:
    """Contours of the fitted L(N, D), the measured (N, D) points and, for a reliable fit, the
    compute-optimal frontier."""
    n_grid = np.geomspace(n.min() / 4, n.max() * 4, 120)
    dd_grid = np.geomspace(d.min() / 4, d.max() * 4, 120)
    nn, dd = np.meshgrid(n_grid, dd_grid)
    cs = ax.contour(nn, dd, chinchilla_loss(p, nn, dd), levels=10, cmap="viridis")
    ax.clabel(cs, fmt="%.2f", fontsize=8)
    ax.plot(n, d, "ko", ms=4, label="measured (N, D)")
    if frontier:
        flops = np.geomspace(6 * n_grid.min() * dd_grid.min(), 6 * n_grid.max() * dd_grid.max(), 50)
        n_opt = chinchilla_frontier(p, flops)[0]
        ax.plot(n_opt, flops / (6 * n_opt), "r-", lw=2, label="compute-optimal frontier")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(n_grid.min(), n_grid.max())
    ax.set_ylim(dd_grid.min(), dd_grid.max())
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel("training tokens D")
    ax.set_title(f"iso-loss contours of the fit ({UNITS.get(s.metric, s.metric)})")
    ax.legend(loc="upper left")


def _emergence_plot(plt, path: Path, verdict, sig, twins, backtest=None) -> Path:
    """The discrete metric with its sigmoid fit and the back-test prediction of its largest size, then
    one panel per continuous twin with its power law."""
    panels = 1 + len(twins)
    fig, axes = plt.subplots(1, panels, figsize=(5.6 * panels, 4.6), squeeze=False, layout="constrained")
    _sigmoid_panel(axes[0, 0], verdict, sig)
    _prediction(axes[0, 0], backtest)
    for ax, o in zip(axes[0, 1:], twins):
        _twin_panel(ax, verdict, o)
    for ax in axes[0]:
        ax.set_xscale("log")
        ax.set_xlabel(X_LABEL)
        if ax.has_data():
            ax.legend()
    fig.suptitle(verdict.verdict, fontsize=10)
    return _save(plt, fig, path)


def _sigmoid_panel(ax, verdict, sig) -> None:
    if sig is None:
        ax.text(0.5, 0.5, "sigmoid fit skipped (see report)", ha="center", transform=ax.transAxes)
        return
    s, p = sig.series, sig.params
    _points(ax, s, f"measured {s.metric}")
    _curve(ax, sig, "sigmoid fit")
    flag = " (outside measured range)" if not (s.n.min() <= p["N_star"] <= s.n.max()) else ""
    ax.axvline(p["N_star"], color="C2", ls="--", label=f"N* = {p['N_star']:.3g}{flag}")
    ax.set_ylabel(UNITS.get(s.metric, s.metric))
    ax.set_title(f"{s.task}: {s.metric} (emergence score {verdict.discrete_statistic:.3g})")


def _twin_panel(ax, verdict, o) -> None:
    s = o.series
    _points(ax, s, f"measured {s.metric}", color="C4")
    _curve(ax, o, "power-law fit", color="C5")
    ax.set_ylabel(UNITS.get(s.metric, s.metric))
    ax.set_title(f"continuous twin {s.metric} (score {verdict.twin_statistics.get(s.metric, np.nan):.3g})")
