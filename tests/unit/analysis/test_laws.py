"""laws: parameters on their bounds are named, and an L(N, D) fit that cannot carry a compute-optimal
frontier (token counts read off one run per size, or a law that misses the points) says so."""
import numpy as np
import pandas as pd
import pytest

from harness.analysis import laws
from harness.analysis.fit.reliability import (MAX_SD_RATIO, UNRELIABLE, assess_chinchilla, per_size_curves,
                                              runs_per_size)
from harness.analysis.fit import chinchilla as chinchilla_module
from harness.analysis.fit import fit_chinchilla
from harness.analysis.fit._common import goodness
from harness.analysis.series import Series, build_series

TRUTH = {"A": 400.0, "B": 1800.0, "E": 1.8, "alpha": 0.34, "beta": 0.36}
SIZES = np.geomspace(2e7, 2e9, 5)
TOKENS = np.geomspace(1e9, 1e11, 4)
N = np.repeat(SIZES, TOKENS.size)
D = np.tile(TOKENS, SIZES.size)


@pytest.fixture(autouse=True)
def tenth_of_the_grid(monkeypatch):
    """Every ninth start of Approach 3's grid: these ladders need no more, and the tests run 3x faster."""
    grid = chinchilla_module.paper_grid()[::9]
    monkeypatch.setattr(chinchilla_module, "paper_grid", lambda: grid)


def _loss(n, d, beta=TRUTH["beta"], b=TRUTH["B"]):
    return TRUTH["E"] + TRUTH["A"] / n ** TRUTH["alpha"] + b / d ** beta


def _noisy(y, seed=0, sd=0.002):
    return y * np.exp(np.random.default_rng(seed).normal(0, sd, y.size))


def _independent_runs(y, n=N, d=D) -> Series:
    """One model per (N, D): every token budget trained on its own (the Chinchilla design)."""
    models = tuple(f"n{a:.0e}-d{b:.0e}" for a, b in zip(n, d))
    return Series("wiki", "nll_per_token", "none", models, ("main",) * n.size, n, d, y, None)


def _one_schedule(y) -> Series:
    """The same (N, D, loss) points as checkpoints step* of one model per size."""
    models = tuple(f"m{np.flatnonzero(SIZES == a)[0]}" for a in N)
    revisions = tuple(f"step{j * 1000}" for _ in SIZES for j in range(1, TOKENS.size + 1))
    return Series("wiki", "nll_per_token", "none", models, revisions, N, D, y, None)


def _sigmoid_series(y, n=np.geomspace(1e7, 1e10, 7)) -> Series:
    k = len(y)
    return Series("t", "acc", "none", tuple(f"m{i}" for i in range(k)), ("",) * k, n, np.full(k, np.nan),
                  np.asarray(y, dtype=float), None)


def test_independent_runs_are_reliable_and_recover_the_exponents():
    o = laws.chinchilla(_independent_runs(_noisy(_loss(N, D))), 0.95)
    assert o.reliable and o.caveats == () and not o.note.startswith(UNRELIABLE)
    assert o.params["alpha"] == pytest.approx(TRUTH["alpha"], rel=0.05)
    assert o.params["beta"] == pytest.approx(TRUTH["beta"], rel=0.05)
    truth_n_opt = TRUTH["beta"] / (TRUTH["alpha"] + TRUTH["beta"])
    assert o.params["N_opt_exponent"] == pytest.approx(truth_n_opt, abs=0.02)
    assert all(r["reliable"] for r in o.rows(0.95))


def test_the_same_points_as_one_schedule_per_size_are_unreliable():
    y = _noisy(_loss(N, D))
    o = laws.chinchilla(_one_schedule(y), 0.95)
    assert not o.reliable
    assert o.note.startswith(f"{UNRELIABLE}: no compute-optimal frontier")
    assert any("checkpoints of one run" in c for c in o.caveats)
    # The numbers are the same as with independent runs: only what they may be used for differs.
    assert o.params == laws.chinchilla(_independent_runs(y), 0.95).params
    assert not any(r["reliable"] for r in o.rows(0.95))


def test_a_law_with_low_r2_is_unreliable():
    # beta alternates between 0.15 and 0.6 from size to size: no single (B, beta) fits the ladder,
    # while each size alone is an exact power law in D.
    beta = np.repeat([0.15, 0.6, 0.15, 0.6, 0.15], TOKENS.size)
    o = laws.chinchilla(_independent_runs(_loss(N, D, beta, 1800.0 * 1e10 ** (beta - 0.36))), 0.95)
    assert o.gof.r2 < 0.95 and not o.reliable
    assert any(c.startswith(f"R² {o.gof.r2:.3f} < 0.95") for c in o.caveats)


def _wide_ladder(beta_swing: float):
    """Six sizes over four decades (the loss spread between sizes dwarfs that within one), five token
    budgets each; beta = 0.36 +- beta_swing on alternate sizes."""
    n = np.repeat(np.geomspace(1e6, 1e10, 6), 5)
    d = np.tile(np.geomspace(1e9, 1e11, 5), 6)
    beta = 0.36 + beta_swing * np.repeat([1, -1, 1, -1, 1, -1], 5)
    return n, d, _noisy(_loss(n, d, beta, 1800.0 * 1e10 ** (beta - 0.36)))


def test_a_misfit_hidden_by_a_high_r2_is_caught_by_the_residual_ratio():
    n, d, y = _wide_ladder(0.03)
    fit = fit_chinchilla(n, d, y, refine=True)
    gof = goodness(y, fit.predict(n, d), 5)
    check = assess_chinchilla(n, d, y, [f"r{i}" for i in range(n.size)], gof)
    assert gof.r2 > 0.99 and check.sd_ratio > MAX_SD_RATIO and not check.reliable
    assert any("residual SD" in c for c in check.caveats)


def test_noise_alone_keeps_the_residual_ratio_near_one():
    n, d, y = _wide_ladder(0.0)
    fit = fit_chinchilla(n, d, y, refine=True)
    check = assess_chinchilla(n, d, y, [f"r{i}" for i in range(n.size)], goodness(y, fit.predict(n, d), 5))
    assert check.reliable and check.caveats == () and 0.5 < check.sd_ratio < 2.0


def test_runs_per_size_and_per_size_curves():
    assert runs_per_size(N, D, _one_schedule(N).models) == {float(s): 1 for s in SIZES}
    assert set(runs_per_size(N, D, _independent_runs(N).models).values()) == {TOKENS.size}
    # Exact power laws in D within each size: R² 1, residual SD ~0.
    r2, sd = per_size_curves(N, D, _loss(N, D))
    assert r2 == pytest.approx(1.0, abs=1e-9) and sd < 1e-6
    # Three token counts per size leave no residual: no per-size reference.
    keep = D < TOKENS[-1]
    assert np.isnan(per_size_curves(N[keep], D[keep], _loss(N[keep], D[keep]))[0])


def test_mixed_ladder_is_reliable_with_a_caveat():
    y = _noisy(_loss(N, D))
    models = list(_independent_runs(y).models)
    first = N == SIZES[0]
    models = [("m0" if f else m) for m, f in zip(models, first)]  # the smallest size: one run's checkpoints
    o = laws.chinchilla(Series("wiki", "nll_per_token", "none", tuple(models), ("main",) * N.size, N, D, y, None),
                        0.95)
    assert o.reliable and o.caveats == ("1 of 5 sizes take their token counts from one run's checkpoints",)


def test_sigmoid_step_is_noted_as_k_on_its_bound():
    o = laws.sigmoid(_sigmoid_series([0.25, 0.25, 0.25, 0.25, 0.8, 0.8, 0.8]), 0.95)
    assert o.caveats == ("k at its bound 50 (a step, not a sigmoid)",)
    assert o.reliable and o.note.endswith("k at its bound 50 (a step, not a sigmoid)")


def test_sigmoid_with_its_midpoint_on_the_search_edge_is_unreliable():
    # Four sizes: the ceiling is fixed at 1 and a slow rise puts N* at the edge of the search range.
    o = laws.sigmoid(_sigmoid_series([0.3, 0.301, 0.302, 0.303], np.geomspace(1e7, 1e10, 4)), 0.95)
    assert not o.reliable and o.note.startswith(f"{UNRELIABLE}: N* not identified")
    assert "x0 at the edge of its search range (2 decades beyond the sizes)" in o.caveats


def test_sigmoid_inside_its_bounds_has_no_caveat():
    n = np.geomspace(1e7, 1e11, 9)
    y = 0.25 + 0.65 / (1 + np.exp(-3.0 * (np.log10(n) - 9.2)))
    o = laws.sigmoid(_sigmoid_series(y, n), 0.95)
    assert o.reliable and o.caveats == ()


def _one_model_per_size_scores(y, finished) -> pd.DataFrame:
    """scores.parquet rows of the (N, D) ladder as revisions step* of ONE model name per size, each
    revision's finished_schedule set to `finished` (a WSD ladder: True; unknown: None; False), or with
    "last" True only at each size's last revision (a cosine ladder, Pythia: the schedule ends there)."""
    s = _one_schedule(y)
    flags = list(D == pd.Series(D).groupby(N).transform("max").to_numpy()) if finished == "last" else [finished] * N.size
    return pd.DataFrame({"model": s.models, "revision": s.revisions, "task": "wiki", "metric": "nll_per_token",
                         "filter": "none", "value": y, "n_params_nonembedding": N, "tokens_trained": D,
                         "finished_schedule": [None if f is None else bool(f) for f in flags]})


@pytest.mark.parametrize("finished", [False, None, "last", True])
def test_finished_schedules_of_one_model_are_separate_runs(finished, monkeypatch):
    verdicts = []

    def assess(*args, **kwargs):
        verdicts.append(assess_chinchilla(*args, **kwargs))
        return verdicts[-1]

    monkeypatch.setattr(laws, "assess_chinchilla", assess)
    scores = _one_model_per_size_scores(_noisy(_loss(N, D)), finished)
    s = build_series(scores, None, "wiki", "nll_per_token", final_only=False, n_boot=0, seed=0)
    assert len(set(s.models)) == SIZES.size  # one model name per size, whatever the schedule
    o = laws.chinchilla(s, 0.95)
    schedule_caveats = [c for c in o.caveats if "one run" in c]
    if finished is True:  # every revision cooled down at its own budget: each is a run of its own (check (a) passes)
        assert not verdicts[0].one_schedule and schedule_caveats == [] and o.reliable
        assert set(s.runs) == {f"{m}@{r}" for m, r in zip(s.models, s.revisions)}
    else:  # checkpoints of one schedule per size (its last one finished it), or unknown: unreliable, as before
        assert verdicts[0].one_schedule and not o.reliable and len(schedule_caveats) == 1
        assert s.runs == s.models


def test_separate_runs_means_no_run_gives_two_points():
    # Approach 2 needs every point to be a run of its own (analysis.frontier). A size with two runs
    # can still hold a mid-schedule checkpoint: run "x" at both budgets of size 1.
    n, d = np.array([1.0, 1, 1, 2, 2, 3, 3]), np.array([10.0, 20, 10, 10, 20, 10, 20])
    y = 5.0 - 0.1 * np.log(n) - 0.2 * np.log(d)
    gof = goodness(y, y, 5)
    mixed = assess_chinchilla(n, d, y, ["x", "x", "y", "a", "b", "c", "e"], gof)
    assert not mixed.separate_runs and not mixed.one_schedule
    own = assess_chinchilla(n, d, y, ["x", "w", "y", "a", "b", "c", "e"], gof)
    assert own.separate_runs
