"""Approach 2 (IsoFLOP profiles): budgets grouped, parabola vertices, and N_opt ∝ C^a recovered on a
synthetic ladder with a known law and on Epoch's digitised Chinchilla runs."""
import numpy as np
import pytest

from harness.analysis.frontier import tokens_per_param
from harness.analysis.isoflop import (TOLERANCE_DEX, fit_profile, group_budgets, isoflop_exponent,
                                      isoflop_profiles, law_at_compute)
from tests.unit.analysis.ladders import A_TRUE, TRUTH, chinchilla_points, grid, law, noisy

# Hoffmann et al. 2022, Table 2, Approach 2: a = 0.49 with interval [0.462, 0.534].
PAPER_A2, PAPER_A2_HALF_WIDTH = 0.49, 0.036


def test_budgets_group_points_within_the_tolerance():
    flops = [1e19, 1.05e19, 3e19, 9.9e18, 1e21, 1.1e21, 3.1e19]
    groups = [g.tolist() for g in group_budgets(flops)]
    assert groups == [[0, 1, 3], [2, 6], [4, 5]]
    # A tighter tolerance splits 1e21 from 1.1e21 (0.041 decades apart).
    assert [4] in [g.tolist() for g in group_budgets(flops, tolerance_dex=0.03)]
    assert 0.03 < TOLERANCE_DEX


def test_parabola_vertex_and_its_interval():
    n = np.geomspace(1e8, 1e10, 7)
    u = np.log10(n)
    exact = 2.5 + 0.3 * (u - 9.2) ** 2
    p = fit_profile(n, exact, 1e20)
    assert p.n_opt == pytest.approx(10 ** 9.2, rel=1e-9) and p.reason == ""
    assert p.predict([10 ** 9.2])[0] == pytest.approx(2.5)
    noisy_p = fit_profile(n, exact + np.random.default_rng(1).normal(0, 0.003, n.size), 1e20)
    assert noisy_p.n_opt_low < 10 ** 9.2 < noisy_p.n_opt_high
    # Three points fit a parabola exactly: a vertex, but no degree of freedom for its interval.
    three = fit_profile(n[2:5], exact[2:5], 1e20)
    assert np.isfinite(three.n_opt) and np.isnan(three.n_opt_low) and np.isnan(three.se)


def test_a_minimum_outside_the_sizes_or_a_concave_profile_has_no_vertex():
    n = np.geomspace(1e8, 1e9, 5)
    falling = 2.5 + 0.3 * (np.log10(n) - 9.8) ** 2  # still falling at the largest size
    assert np.isnan(fit_profile(n, falling, 1e20).n_opt)
    assert "above the largest" in fit_profile(n, falling, 1e20).reason
    assert "not convex" in fit_profile(n, 3.0 - 0.3 * (np.log10(n) - 8.5) ** 2, 1e20).reason


def test_the_law_along_an_isoflop_line():
    n = np.geomspace(1e7, 1e9, 5)
    np.testing.assert_allclose(law_at_compute(TRUTH, 1e20, n), law(n, 1e20 / (6 * n)))


def test_approach2_recovers_the_true_exponent_on_a_noise_free_ladder():
    n, d = grid(9)
    profiles = isoflop_profiles(n, d, law(n, d))
    assert [p.n.size for p in profiles] == [3, 4, 5, 6, 7, 8, 9, 8, 7, 6, 5, 4, 3]
    # The parabola is only an approximation of the true (asymmetric) profile: 0.001 is its bias here.
    assert isoflop_exponent(profiles).a == pytest.approx(A_TRUE, abs=0.001)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_approach2_recovers_the_true_exponent_with_noise(seed):
    n, d = grid(9)
    e = isoflop_exponent(isoflop_profiles(n, d, noisy(law(n, d), seed)))
    # Noise can push a 3-point profile's vertex past its sizes: that profile then has no minimum.
    assert e.n_profiles >= 11 and e.method.startswith(f"least squares over {e.n_profiles} profiles")
    assert e.low <= A_TRUE <= e.high
    assert abs(e.a - A_TRUE) <= e.high - e.low  # within its interval's width of the truth
    assert e.high - e.low < 0.12


def test_approach2_intervals_cover_the_truth_at_their_level():
    # 100 noisy 9 x 9 ladders: the 95% intervals should cover the true exponent ~95 times (binomial SD
    # 2.2). The equal-variance regression error covers it 83 times here: 3-point profiles' vertices
    # are far noisier than 9-point ones', which the HC3 error allows for (98 here).
    n, d = grid(9)
    y = law(n, d)
    exps = [isoflop_exponent(isoflop_profiles(n, d, noisy(y, seed))) for seed in range(100)]
    assert sum(e.low <= A_TRUE <= e.high for e in exps) >= 90
    assert abs(np.mean([e.a for e in exps]) - A_TRUE) < 0.005  # no bias beyond the parabola's 0.001
    # The tokens-per-parameter ratio at the profiles' middle compute, from the same line (98 of 100 here).
    ratios = [(e.tokens_per_param_mid(), tokens_per_param(TRUTH, 10 ** e.log10_flops_mid)) for e in exps]
    assert sum(low <= truth <= high for (_, low, high), truth in ratios) >= 90


def test_two_profiles_take_their_interval_from_the_vertices():
    n, d = grid(9)
    y = noisy(law(n, d), 3)
    profiles = [p for p in isoflop_profiles(n, d, y) if p.n.size == 8]
    e = isoflop_exponent(profiles)
    assert e.n_profiles == 2 and e.method.startswith("two profiles")
    assert e.low < e.a < e.high
    assert isoflop_exponent(profiles[:1]) is None


@pytest.mark.slow
def test_approach2_on_the_chinchilla_points_agrees_with_hoffmann():
    # Tolerance: Hoffmann et al.'s own Approach-2 interval is 0.462-0.534 (half-width 0.036). On these
    # digitised points the grouping tolerance alone moves a between 0.50 and 0.52 (0.03-0.1 decades).
    n, d, y = chinchilla_points()
    e = isoflop_exponent(isoflop_profiles(n, d, y))
    assert e.a == pytest.approx(PAPER_A2, abs=PAPER_A2_HALF_WIDTH)
    assert e.low <= PAPER_A2 <= e.high
    assert e.n_profiles >= 9  # Hoffmann et al. used nine budgets
    for tol in (0.03, 0.08, 0.1):
        assert isoflop_exponent(isoflop_profiles(n, d, y, tolerance_dex=tol)).a == pytest.approx(0.51, abs=0.02)
    # ~20 tokens per parameter (Hoffmann et al.): 22.5 [19.1, 26.4] at the profiles' middle, 8.2e19 FLOPs
    ratio, low, high = e.tokens_per_param_mid()
    assert low <= 20 <= high and 15 < ratio < 30
