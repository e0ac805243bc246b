"""Approach 3's compute-optimal frontier with intervals, the residual-trend check, and their rows,
report section and plot: known truth on synthetic ladders, Epoch's numbers on the Chinchilla points."""
import numpy as np
import pandas as pd
import pytest

from pathlib import Path

from harness.analysis import laws, plot
from harness.analysis import plot_isoflop as plot_isoflop_module
from harness.analysis.fit import CHINCHILLA_EPOCH, chinchilla_frontier
from harness.analysis.fit.chinchilla import huber_objective
from harness.analysis.fit.reliability import UNRELIABLE
from harness.analysis.fit.residuals import AMPLITUDE_FLOOR, trend
from harness.analysis.frontier import CHINCHILLA_FLOPS, exponents, ladder_flops, tokens_per_param
from harness.analysis.report_frontier import compute_optimal_answers, frontier_section
from harness.analysis.tables import FIT_COLUMNS, fits_table
from tests.unit.analysis.ladders import (A_TRUE, B_TRUE, TRUTH, chinchilla_points, grid, law, noisy, one_schedule,
                                         runs)

ISOFLOP_PARAMS = ("a", "b", "C_mid", "N_opt_at_C_mid", "tokens_per_param_at_C_mid")
FRONTIER_PARAMS = {"a", "b", "C_ladder", "N_opt_at_C_ladder", "tokens_per_param_at_C_ladder", "C_chinchilla",
                   "tokens_per_param_at_C_chinchilla"}


def _fit(y, n, d, n_boot=200, seed=0, series=runs):
    return laws.chinchilla(series(n, d, y), 0.95, n_boot=n_boot, seed=seed)


@pytest.fixture(scope="module")
def clean():
    """A 6 x 6 ladder of finished runs from TRUTH with 0.3% noise, fitted with a point bootstrap."""
    n, d = grid(6)
    return n, d, _fit(noisy(law(n, d), seed=0), n, d)


def test_exponents_and_ratio_are_the_laws_minimum():
    a, b = exponents(TRUTH)
    assert (a, b) == pytest.approx((A_TRUE, B_TRUE)) and a == pytest.approx(0.5143, abs=1e-4)
    # The ratio is D_opt / N_opt of the law's own minimum along C = 6ND, found here by brute force.
    c = 1e20
    n = np.geomspace(1e7, 1e11, 200_001)
    n_best = n[np.argmin(law(n, c / (6 * n)))]
    assert tokens_per_param(TRUTH, c) == pytest.approx((c / (6 * n_best)) / n_best, rel=1e-3)
    assert ladder_flops([1e8, 1e9], [1e10, 1e9]) == pytest.approx(6e18)  # sqrt(6e18 * 6e18)


def test_frontier_intervals_cover_the_truth(clean):
    n, d, o = clean
    f = o.frontier
    assert o.reliable and f is not None and o.ci_method.startswith("point bootstrap over (N, D) runs")
    for est, truth in ((f.a, A_TRUE), (f.b, B_TRUE)):
        assert est.low <= truth <= est.high and abs(est.value - truth) <= est.high - est.low
        assert est.n_ok >= 190 and est.high - est.low < 0.1
    assert f.a.value + f.b.value == pytest.approx(1.0)
    assert f.flops_ladder == pytest.approx(np.sqrt((6 * n * d).min() * (6 * n * d).max()))
    for est, flops in ((f.ratio_ladder, f.flops_ladder), (f.ratio_chinchilla, CHINCHILLA_FLOPS)):
        assert est.low <= tokens_per_param(TRUTH, flops) <= est.high
    n_opt_true = chinchilla_frontier(TRUTH, f.flops_ladder)[0]
    assert f.n_opt_ladder.low <= n_opt_true <= f.n_opt_ladder.high
    # Approach 2 on the same points agrees with the truth too, and so does its ratio at its middle C.
    assert f.approach2.low <= A_TRUE <= f.approach2.high
    ratio, low, high = f.approach2.tokens_per_param_mid()
    assert low <= tokens_per_param(TRUTH, 10 ** f.approach2.log10_flops_mid) <= high and low < ratio < high


def test_a_misfit_law_keeps_approach_2_but_gives_no_approach_3_frontier(clean):
    # Separate runs whose shortest budget sits 3% above the law: the law is unreliable (the residuals
    # bend with D), but the IsoFLOP profiles assume no law, so Approach 2 still reads the frontier.
    n, d, _ = clean
    o = _fit(noisy(law(n, d) * (1 + 0.03 * (d == d.min())), seed=0), n, d, n_boot=0)
    assert not o.reliable and o.frontier is not None and o.frontier.a is None and o.frontier.ratio_ladder is None
    a2 = o.frontier.approach2  # the kink moves the true optimum too (shortest runs worse): near, not exact
    assert a2.n_profiles >= 5 and np.isfinite([a2.low, a2.high]).all() and abs(a2.a - A_TRUE) < 0.06
    fits = fits_table([o], [], 0.95)
    assert "chinchilla_frontier" not in set(fits["law"])
    assert list(fits.loc[fits.law == "isoflop", "param"]) == list(ISOFLOP_PARAMS)
    lines = frontier_section(fits)
    said = [x for x in lines if x.startswith("- wiki/nll_per_token: the L(N, D) fit is unreliable")]
    assert len(said) == 1 and said[0].endswith("so Approach 3 gives no frontier.")
    assert any(x.startswith("| a by Approach 2") for x in lines) and not any("(Approach 3)" in x for x in lines)
    assert any(x.startswith("- Approach 2's a has an interval that") for x in lines)
    [answer] = compute_optimal_answers(fits)
    assert answer.startswith("- **wiki** / nll_per_token, compute-optimal: N_opt ∝ C^") and "(Approach 2)" in answer
    assert "(Approach 3)" not in answer and "law is unreliable" in answer


def test_frontier_rows_keep_the_fits_schema(clean):
    _, _, o = clean
    fits = fits_table([o], [], 0.95)
    assert list(fits.columns) == list(FIT_COLUMNS)
    front = fits[fits.law == "chinchilla_frontier"].set_index("param")
    assert set(front.index) == FRONTIER_PARAMS and front["reliable"].all()
    assert front.loc["a", "estimate"] == pytest.approx(o.params["N_opt_exponent"])
    assert np.isfinite(front.loc["tokens_per_param_at_C_ladder", ["ci_low", "ci_high"]].to_numpy(float)).all()
    assert front.loc["C_chinchilla", "estimate"] == pytest.approx(5.88e23)
    iso = fits[fits.law == "isoflop"]
    assert list(iso["param"]) == list(ISOFLOP_PARAMS) and iso.iloc[0]["note"].startswith("IsoFLOP profiles: C ")
    assert iso["reliable"].all()
    res = fits[fits.law == "chinchilla_residuals"].set_index("param")["estimate"]
    assert set(res.index) == {f"{s}_{v}" for s in ("spearman_rho", "spearman_p", "kruskal_eps2", "kruskal_p")
                              for v in "ND"} | {"interaction_f", "interaction_p", "interaction_share"}


def test_an_unreliable_fit_has_residual_rows_and_no_frontier():
    n, d = grid(6)
    o = _fit(noisy(law(n, d)), n, d, n_boot=0, series=one_schedule)
    assert not o.reliable and o.frontier is None
    fits = fits_table([o], [], 0.95)
    assert not set(fits["law"]) & {"chinchilla_frontier", "isoflop"}
    assert (fits.loc[fits.law == "chinchilla_residuals", "reliable"] == False).all()  # noqa: E712
    lines = frontier_section(fits)
    said = [x for x in lines if x.startswith("- wiki/nll_per_token: the L(N, D) fit is unreliable")]
    assert len(said) == 1 and "Approach 2 gives none either" in said[0] and "checkpoints of one run" in said[0]
    assert compute_optimal_answers(fits) == ["- **wiki** / nll_per_token, compute-optimal: no compute-optimal frontier; "
                                             f"the L(N, D) law is unreliable (R² {fits.r2.iloc[0]:.4g}), so it gives "
                                             "no frontier. See \"Compute-optimal frontier\"."]
    assert not any("Porian" in x or x.startswith("|") for x in lines)


def test_point_weights_count_a_point_as_often_as_it_was_drawn():
    n, d = grid(4)
    log_l = np.log(noisy(law(n, d)))
    theta = np.array([[6.0, 7.5, 0.6, 0.35, 0.36], [5.0, 8.0, 0.5, 0.3, 0.4]])
    w = np.ones((2, n.size))
    w[:, 3] = 3.0  # point 3 drawn three times
    w[1, 5] = 0.0  # point 5 not drawn in the second resample
    got_f, got_g = huber_objective(theta, np.log(n), np.log(d), log_l, weights=w)
    for row in range(2):
        idx = np.repeat(np.arange(n.size), w[row].astype(int))
        f, g = huber_objective(theta[row : row + 1], np.log(n[idx]), np.log(d[idx]), log_l[idx])
        assert got_f[row] == pytest.approx(f[0], rel=1e-12)
        np.testing.assert_allclose(got_g[row], g[0], rtol=1e-10)


def test_residual_trend_flags_a_ladder_from_a_different_law(clean):
    n, d, o = clean
    assert not any(t.flagged for t in o.trends) and o.caveats == ()
    # An extra term in D: the shortest budget's runs 3% worse than the law (a warm-up of fixed length
    # costs the shortest runs most). R² stays 0.999 and the residual SD ratio near 1; the law bends.
    kinked = _fit(noisy(law(n, d) * (1 + 0.03 * (d == d.min())), seed=0), n, d, n_boot=0)
    by = {t.variable: t for t in kinked.trends}
    assert by["D"].flagged and by["D"].grouped and not by["N"].flagged
    assert not kinked.reliable and kinked.note.startswith(UNRELIABLE) and kinked.gof.r2 > 0.99
    assert any(c.startswith("log residuals depend on D") for c in kinked.caveats)
    # The same in N: the smallest size 3% worse (e.g. where the embedding dominates the model).
    small = _fit(noisy(law(n, d) * (1 + 0.03 * (n == n.min())), seed=0), n, d, n_boot=0)
    assert {t.variable for t in small.trends if t.flagged} == {"N"} and not small.reliable


def test_sizes_whose_residuals_move_with_d_in_opposite_directions_are_flagged(clean, monkeypatch):
    # The embedded ladder's misfit: small sizes flatten in D sooner than one beta allows, large ones
    # later. Pooled over sizes the residuals' trend in D cancels; per size it does not.
    n, d, o = clean
    tilt = np.log(np.unique(n)).searchsorted(np.log(n)) - 2.5  # -2.5 .. +2.5 from smallest to largest
    bent = _fit(noisy(law(n, d) * np.exp(-0.01 * tilt * np.log(d / np.median(d))), seed=0), n, d, n_boot=0)
    by = {t.variable: t for t in bent.trends}
    assert not by["N"].flagged and not by["D"].flagged
    assert by["NxD"].flagged and by["NxD"].slopes[0] > 0 > by["NxD"].slopes[-1] and not bent.reliable
    assert any(c.startswith("log residuals change with D differently for different sizes") for c in bent.caveats)
    assert not {t.variable: t for t in o.trends}["NxD"].flagged  # the correct law's ladder passes
    # the plot draws the residuals against D one line per size, and says the interaction is flagged
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.analysis.plot_isoflop import isoflop_plot

    seen = {}
    monkeypatch.setattr(plot_isoflop_module, "_save", lambda plt_, fig, path: seen.setdefault("fig", fig) and path)
    isoflop_plot(plt, Path("unused.png"), bent)
    by_d = seen["fig"].axes[2]
    assert len(by_d.get_lines()) == 1 + np.unique(n).size  # the zero line and one per size
    assert "slopes per size" in by_d.get_title() and by_d.get_title().endswith("FLAGGED")
    plt.close(seen["fig"])


def test_spearman_alone_misses_what_the_law_absorbs(clean):
    # A warm-up penalty ~ 1/D (10% at the shortest budget): alpha and beta absorb it, leaving no
    # monotone trend, while N_opt's exponent moves from 0.514 to ~0.6. Residuals cannot see this.
    n, d, _ = clean
    o = _fit(noisy(law(n, d) * (1 + 0.1 * d.min() / d), seed=0), n, d, n_boot=0)
    assert all(abs(t.rho) < 0.25 for t in o.trends if t.variable != "NxD")
    assert o.params["N_opt_exponent"] - A_TRUE > 0.05


def test_a_monotone_trend_counts_only_above_the_floor():
    rng = np.random.default_rng(0)
    n = np.repeat(np.geomspace(1e7, 1e9, 6), 6)
    drift = 0.004 * np.log(n / 1e7) + rng.normal(0, 0.002, n.size)
    t = trend("N", n, drift)
    assert t.monotone and t.rho > 0.5 and t.p_rho < 0.05
    assert "trend with N (Spearman rho +" in t.caveat()
    tiny = trend("N", n, drift * AMPLITUDE_FLOOR / 100)  # the same shape, far below the Huber noise level
    assert not tiny.flagged and tiny.caveat() == ""


def test_report_section_and_plot_of_a_reliable_fit(clean, tmp_path):
    _, _, o = clean
    lines = frontier_section(fits_table([o], [], 0.95))
    text = "\n".join(lines)
    for needle in ("### wiki / nll_per_token", "a: N_opt ∝ C^a (Approach 3)", "a by Approach 2",
                   "0.46 (Approach 3)", "D_opt / N_opt at C = 5.88e+23", "Porian et al. 2024",
                   "Spearman ρ", "Kruskal-Wallis", "no trend with N"):
        assert needle in text, needle
    a = o.frontier.a
    assert f"{a.value:.4g} [{a.low:.4g}, {a.high:.4g}]" in text
    said = "includes" if a.low <= 0.5 <= a.high else "excludes"
    assert f"Approach 3's a has an interval that {said} 0.5" in text
    ratio = o.frontier.ratio_ladder
    said = "includes" if ratio.low <= 20 <= ratio.high else "excludes"
    assert f"ratio at the ladder's compute has an interval that {said} 20." in text
    [answer] = compute_optimal_answers(fits_table([o], [], 0.95))
    assert f"N_opt ∝ C^{a.value:.4g} [{a.low:.4g}, {a.high:.4g}] by the law (Approach 3)" in answer
    assert "(Approach 2)" in answer and "the L(N, D) law holds" in answer
    paths = plot.make_all(tmp_path, [o], [], pd.DataFrame())
    iso = tmp_path / "wiki_isoflop.png"
    assert iso in paths and iso.stat().st_size > 20_000


def test_a_reliable_fit_without_resamples_says_it_has_no_intervals():
    n, d = grid(5)
    o = _fit(noisy(law(n, d), seed=1), n, d, n_boot=0)
    assert o.reliable and o.ci_method == "none" and "no intervals" in o.note
    text = "\n".join(frontier_section(fits_table([o], [], 0.95)))
    assert "No intervals (no resamples)." in text and "(no interval)" in text
    assert "Approach 3's a is " in text and "(no interval) against 0.5" in text


@pytest.mark.slow
def test_chinchilla_points_give_epochs_frontier():
    # Epoch's exact replication (alpha 0.3473, beta 0.3672) puts a = beta / (alpha + beta) at 0.514; the
    # fit reproduces alpha and beta within 1% (test_fit.py), so a within 0.005.
    n, d, y = chinchilla_points()
    o = _fit(y, n, d, n_boot=100)
    epoch_a = exponents(CHINCHILLA_EPOCH)[0]
    assert epoch_a == pytest.approx(0.514, abs=5e-4)
    assert o.reliable and not any(t.flagged for t in o.trends)
    f = o.frontier
    assert f.a.value == pytest.approx(epoch_a, abs=0.005) and f.a.low <= epoch_a <= f.a.high
    # Approach 2 on the same points lands within both intervals of Approach 3's exponent.
    assert f.a.low <= f.approach2.a <= f.a.high
