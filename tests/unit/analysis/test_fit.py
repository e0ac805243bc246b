"""Fits recover known parameters from noisy synthetic data; Approach 3 reproduces Epoch's numbers."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.analysis.fit import ChinchillaFit, fit_chinchilla, fit_power_law, fit_power_law_batch, fit_sigmoid
from harness.analysis.fit._lbfgs import minimize_batch
from harness.analysis.fit.chinchilla import huber_objective, paper_grid
from harness.analysis.fit.sigmoid import K_BOUNDS, X0_MARGIN

DATA = Path(__file__).resolve().parents[2] / "data" / "chinchilla_points.csv"


def test_power_law_recovers_parameters_from_noisy_points():
    rng = np.random.default_rng(0)
    n = np.geomspace(1e7, 1e11, 9)
    truth = {"E": 1.8, "A": 420.0, "alpha": 0.34}
    y = truth["E"] + truth["A"] / n ** truth["alpha"] + rng.normal(0, 0.002, n.size)
    fit = fit_power_law(n, y)
    assert fit.params["alpha"] == pytest.approx(truth["alpha"], rel=0.05)
    assert fit.params["E"] == pytest.approx(truth["E"], rel=0.02)
    assert fit.gof.r2 > 0.999 and fit.gof.dof == 6
    # The prediction at an unseen size stays close to the truth (interpolation inside the range).
    assert fit.predict(3e9) == pytest.approx(truth["E"] + truth["A"] / 3e9 ** truth["alpha"], rel=0.01)


def test_power_law_batch_matches_single_fits():
    rng = np.random.default_rng(1)
    n = np.geomspace(1e6, 1e9, 5)
    ys = 3.0 + 50.0 / n**0.25 + rng.normal(0, 0.01, (4, n.size))
    e, a, alpha = fit_power_law_batch(n, ys)
    for i in range(4):
        single = fit_power_law(n, ys[i]).params
        assert (e[i], a[i], alpha[i]) == pytest.approx((single["E"], single["A"], single["alpha"]), rel=1e-9)


def test_power_law_keeps_e_non_negative_for_a_pure_power_law():
    n = np.geomspace(1e6, 1e10, 6)
    fit = fit_power_law(n, (8.8e13 / n) ** 0.076)  # Kaplan's L(N): no irreducible term
    assert fit.params["E"] >= 0
    assert fit.params["alpha"] == pytest.approx(0.076, rel=0.05)


@pytest.mark.parametrize(
    "n, y, reason",
    [([1e6, 1e7], [3.0, 2.0], "distinct sizes"),
     ([1e6, 1e6, 1e7, 1e7], [3.0, 3.1, 2.0, 2.1], "distinct sizes"),
     ([1e6, 1e7, 1e8], [3.0, np.nan, 2.0], "NaN"),
     ([1e6, 1e7, 1e8], [2.5, 2.5, 2.5], "constant")],
)
def test_unusable_input_raises_with_reason(n, y, reason):
    for fit in (fit_power_law, fit_sigmoid):
        with pytest.raises(ValueError, match=reason):
            fit(n, y)


def test_sigmoid_recovers_threshold_and_levels():
    rng = np.random.default_rng(2)
    n = np.geomspace(1e7, 1e11, 13)
    truth = {"x0": 9.2, "k": 3.0, "floor": 0.25, "ceiling": 0.9}
    y = truth["floor"] + (truth["ceiling"] - truth["floor"]) / (1 + np.exp(-truth["k"] * (np.log10(n) - truth["x0"])))
    fit = fit_sigmoid(n, y + rng.normal(0, 0.005, n.size))
    assert fit.params["x0"] == pytest.approx(truth["x0"], abs=0.05)
    assert fit.params["k"] == pytest.approx(truth["k"], rel=0.15)
    assert fit.params["floor"] == pytest.approx(truth["floor"], abs=0.02)
    assert fit.params["ceiling"] == pytest.approx(truth["ceiling"], abs=0.02)
    assert fit.threshold == pytest.approx(10**9.2, rel=0.15)
    assert not fit.threshold_outside_range


def test_sigmoid_fixed_floor_and_threshold_flag_outside_range():
    # Only the foot of the curve is measured: N* lies beyond the largest size and must be flagged.
    n = np.geomspace(1e7, 1e9, 5)
    y = 0.25 + 0.7 / (1 + np.exp(-2.0 * (np.log10(n) - 10.0)))
    fit = fit_sigmoid(n, y, floor=0.25, ceiling=0.95)
    assert fit.params["floor"] == 0.25 and fit.params["ceiling"] == 0.95
    assert fit.params["x0"] == pytest.approx(10.0, abs=0.05)
    assert fit.threshold_outside_range


def test_batched_lbfgs_minimises_rosenbrock_from_many_starts():
    def rosen(x, rows):
        a, b = x[:, 0], x[:, 1]
        f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
        g = np.stack([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)], axis=1)
        return f, g

    starts = np.random.default_rng(3).uniform(-2, 2, (50, 2))
    res = minimize_batch(rosen, starts, gtol=1e-8, ftol=1e-15)
    assert res.converged.all()
    np.testing.assert_allclose(res.x, 1.0, atol=1e-4)


def test_huber_gradient_matches_finite_differences():
    rng = np.random.default_rng(4)
    log_n, log_d = np.log(np.geomspace(1e7, 1e10, 20)), np.log(np.geomspace(1e9, 1e11, 20))
    log_l = np.log(2.0 + rng.uniform(0, 1, 20))
    theta = np.array([[6.0, 7.0, 0.6, 0.35, 0.3]])
    _, grad = huber_objective(theta, log_n, log_d, log_l)
    h = 1e-6
    numeric = [(huber_objective(theta + h * e, log_n, log_d, log_l)[0] - huber_objective(theta - h * e, log_n, log_d, log_l)[0])[0] / (2 * h)
               for e in np.eye(5)]
    np.testing.assert_allclose(grad[0], numeric, rtol=1e-5, atol=1e-9)


def test_chinchilla_recovers_known_parameters_and_frontier():
    rng = np.random.default_rng(5)
    truth = {"A": 400.0, "B": 1800.0, "E": 1.8, "alpha": 0.34, "beta": 0.36}
    n = np.repeat(np.geomspace(5e7, 5e9, 8), 6)
    d = np.tile(np.geomspace(1e9, 3e11, 6), 8)
    loss = (truth["E"] + truth["A"] / n ** truth["alpha"] + truth["B"] / d ** truth["beta"]) * np.exp(rng.normal(0, 0.003, n.size))
    fit = fit_chinchilla(n, d, loss, starts=paper_grid()[::9])  # a tenth of the grid keeps this fast
    for k in ("E", "alpha", "beta"):
        assert fit.params[k] == pytest.approx(truth[k], rel=0.1), k
    # Frontier: C = 6 N D, and no other split of the same budget gives a lower predicted loss.
    c = 1e21
    n_opt, d_opt = fit.frontier(c)
    assert 6 * n_opt * d_opt == pytest.approx(c, rel=1e-9)
    others = n_opt * np.geomspace(0.5, 2.0, 21)
    assert fit.predict(n_opt, d_opt) <= fit.predict(others, c / (6 * others)).min() + 1e-12
    # Refining with tight tolerances never ends worse than scipy's stopping rule.
    refined = fit_chinchilla(n, d, loss, starts=paper_grid()[::9], refine=True)
    assert refined.loss <= fit.loss


@pytest.mark.slow
def test_chinchilla_approach3_reproduces_epoch_on_the_240_points():
    df = pd.read_csv(DATA)
    assert len(df) == 245
    df = df.sort_values("loss").iloc[:-5]  # Epoch drops the 5 highest-loss runs
    n = df["Model Size"].to_numpy()
    d = df["Training FLOP"].to_numpy() / (6 * n)
    fit = fit_chinchilla(n, d, df["loss"].to_numpy())
    published = {"A": 477.9, "B": 2143.0, "E": 1.817, "alpha": 0.3473, "beta": 0.3672}
    for k, v in published.items():
        assert fit.params[k] == pytest.approx(v, rel=0.01), (k, fit.params[k])
    assert fit.n_starts == 4500 and fit.n_points == 240


def test_sigmoid_marks_parameters_on_their_bounds():
    n = np.geomspace(1e7, 1e10, 7)
    step = fit_sigmoid(n, [0.25, 0.25, 0.25, 0.25, 0.8, 0.8, 0.8])  # flat, one jump, flat
    assert step.params["k"] == pytest.approx(K_BOUNDS[1]) and step.at_bounds == ("k",)
    # A slow linear rise under a ceiling fixed at 1: the midpoint runs to the edge of the search.
    slow = fit_sigmoid(n, 0.3 + 0.001 * np.arange(7), ceiling=1.0)
    assert slow.params["x0"] == pytest.approx(np.log10(n.max()) + X0_MARGIN) and slow.at_bounds == ("x0",)
    # A fixed level is not a finding: the ceiling held at 1 is never reported on its bound.
    assert "ceiling" not in slow.at_bounds


def test_sigmoid_inside_its_bounds_marks_nothing():
    n = np.geomspace(1e7, 1e11, 13)
    y = 0.25 + 0.65 / (1 + np.exp(-3.0 * (np.log10(n) - 9.2)))
    assert fit_sigmoid(n, y).at_bounds == ()


def _chinchilla_grid():
    n = np.repeat(np.geomspace(5e7, 5e9, 6), 5)
    d = np.tile(np.geomspace(1e9, 3e11, 5), 6)
    noise = np.exp(np.random.default_rng(6).normal(0, 0.003, n.size))
    return n, d, (1.8 + 400.0 / n**0.34 + 1800.0 / d**0.36) * noise


def test_chinchilla_e_collapsing_to_zero_is_on_its_bound():
    n, d, _ = _chinchilla_grid()
    fit = fit_chinchilla(n, d, 400.0 / n**0.34 + 1800.0 / d**0.36, starts=paper_grid()[::9], refine=True)
    assert fit.params["E"] < 1e-6 and fit.at_bounds == ("E",)
    assert fit.implausible == ()


def test_chinchilla_e_near_zero_is_on_its_bound_too():
    """The committed WSD ladder's fit: E = 3.8e-4 beside a smallest loss of 3.38 is a collapsed E, not a
    measured one (its bootstrap interval was 1e-7 wide); a real floor at a third of the loss is not."""
    collapsed = ChinchillaFit({"A": 5.5, "B": 16.7, "E": 3.8e-4, "alpha": 0.12, "beta": 0.13}, 0.0, 25, 1, loss_min=3.38)
    assert collapsed.at_bounds == ("E",)
    real = ChinchillaFit({"A": 5.5, "B": 16.7, "E": 1.1, "alpha": 0.12, "beta": 0.13}, 0.0, 25, 1, loss_min=3.38)
    assert real.at_bounds == ()


def test_chinchilla_flags_exponents_outside_the_sane_range():
    fit = ChinchillaFit({"A": 1.0, "B": 1.0, "E": 1.5, "alpha": 0.01, "beta": 1.7}, 0.0, 9, 1, loss_min=2.0)
    assert fit.implausible == ("alpha", "beta") and fit.at_bounds == ()


def test_chinchilla_e_never_exceeds_the_smallest_loss():
    n, d, loss = _chinchilla_grid()
    low = loss.copy()
    low[np.argmin(loss)] = 1.7  # one point below the true E = 1.8: the robust fit ignores it
    free = fit_chinchilla(n, d, low, starts=paper_grid()[::27], refine=True, cap_e=False)
    assert free.params["E"] > 1.7  # the unbounded law says a measured loss cannot happen
    capped = fit_chinchilla(n, d, low, starts=paper_grid()[::27], refine=True)
    assert capped.params["E"] == pytest.approx(1.7, rel=1e-12) and capped.at_bounds == ("E",)
    assert capped.loss_min == 1.7 and capped.loss >= free.loss  # a bound can only cost objective


def test_chinchilla_bound_on_e_changes_nothing_when_it_does_not_bind():
    n, d, loss = _chinchilla_grid()
    capped = fit_chinchilla(n, d, loss, starts=paper_grid()[::27])
    free = fit_chinchilla(n, d, loss, starts=paper_grid()[::27], cap_e=False)
    assert capped.params == free.params and capped.at_bounds == ()
