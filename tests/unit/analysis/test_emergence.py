"""Emergence score (Schaeffer et al. 2023) and the mirage verdict on textbook curves."""
import numpy as np
import pytest

from harness.analysis.emergence import (REL_FLOOR, emergence_statistic, emergence_statistics, looks_emergent,
                                        mirage_verdict, oriented, single_step)

# GPT-3 few-shot 2-digit addition, % accuracy (Brown et al. 2020, Table H.1).
GPT3_N = np.array([125e6, 350e6, 760e6, 1.3e9, 2.7e9, 6.7e9, 13e9, 175e9])
GPT3_ADD2 = np.array([2.00, 4.10, 3.50, 4.50, 8.90, 11.9, 55.5, 100.0])


def test_score_by_hand_on_gpt3_addition():
    # diffs 2.1 -0.6 1.0 4.4 3.0 43.6 44.5 -> median square 9 -> (100 - 2) / 3
    assert emergence_statistic(GPT3_N, GPT3_ADD2) == pytest.approx(98.0 / 3.0)
    assert looks_emergent(emergence_statistic(GPT3_N, GPT3_ADD2), 8)


def test_steady_climb_scores_number_of_steps_and_is_not_emergent():
    y = np.linspace(0.3, 0.6, 6)
    assert emergence_statistic(np.geomspace(1e7, 1e10, 6), y) == pytest.approx(5.0)
    assert not looks_emergent(5.0, 6)


def test_score_sorts_by_size_and_signs_decline():
    n = np.array([1e9, 1e7, 1e8])
    assert emergence_statistic(n, [0.3, 0.1, 0.2]) == pytest.approx(2.0)
    assert emergence_statistic(n, [0.1, 0.3, 0.2]) == pytest.approx(-2.0)
    assert emergence_statistic(n, [0.5, 0.5, 0.5]) == 0.0
    assert np.isnan(emergence_statistic(n, [0.5, np.nan, 0.5]))


def test_orientation_makes_lower_is_better_metrics_climb():
    assert oriented("brier", [0.3])[0] == -0.3 and oriented("acc", [0.3])[0] == 0.3


def test_mirage_when_exact_match_is_sharp_but_edit_distance_smooth():
    # Schaeffer et al.: per-token accuracy p improves smoothly; exact match over L tokens ~ p^L is
    # sharp, edit distance ~ L (1 - p) is smooth.
    p = np.linspace(0.5, 0.97, 8)
    v = mirage_verdict("arith", GPT3_N, "exact_match", p**10, {"edit_distance": 10 * (1 - p)})
    assert v.discrete_emergent and not v.twins_emergent["edit_distance"]
    assert v.verdict.startswith("mirage")


def test_jump_survives_when_the_twin_jumps_too():
    twin = -5.0 + 4.0 * GPT3_ADD2 / 100  # a log-prob of the target that jumps with accuracy
    v = mirage_verdict("add2", GPT3_N, "acc", GPT3_ADD2 / 100, {"target_loglik": twin})
    assert v.verdict.startswith("jump survives") and v.twins_emergent["target_loglik"]


def test_no_jump_and_no_twin_verdicts():
    steady = mirage_verdict("t", GPT3_N, "acc", np.linspace(0.3, 0.7, 8), {"brier": np.linspace(0.7, 0.4, 8)})
    assert steady.verdict.startswith("no jump")
    alone = mirage_verdict("t", GPT3_N, "acc", GPT3_ADD2 / 100, {})
    assert "no continuous twin" in alone.verdict


def test_scores_of_resamples_row_by_row():
    ys = np.vstack([GPT3_ADD2, np.linspace(0, 1, 8)])
    np.testing.assert_allclose(emergence_statistics(GPT3_N, ys), [98.0 / 3.0, 7.0])


FIVE = np.array([1e7, 1e8, 1e9, 1e10, 1e11])
FLAT_THEN_STEP = np.array([0.0, 0.0, 0.0, 0.6, 0.6])  # exact match stuck at 0, then a jump


def test_flat_then_step_scores_finitely():
    # median squared step is 0: the denominator is floored, at REL_FLOOR x spread without a noise ...
    assert emergence_statistic(FIVE, FLAT_THEN_STEP) == pytest.approx(1.0 / REL_FLOOR)
    # ... and at the measurement noise when there is one: 0.6 / 0.02.
    assert emergence_statistic(FIVE, FLAT_THEN_STEP, noise=0.02) == pytest.approx(30.0)
    np.testing.assert_allclose(emergence_statistics(FIVE, np.vstack([FLAT_THEN_STEP, FLAT_THEN_STEP]), 0.02), [30, 30])


def test_noise_floor_only_matters_when_the_steps_are_smaller():
    y = np.linspace(0.3, 0.6, 6)  # steps of 0.06
    n = np.geomspace(1e7, 1e10, 6)
    assert emergence_statistic(n, y, noise=0.01) == pytest.approx(5.0)  # unchanged: steps exceed the noise
    assert emergence_statistic(n, y, noise=0.1) == pytest.approx(3.0)  # 0.3 / 0.1: steps within the noise
    assert emergence_statistic(GPT3_N, GPT3_ADD2, noise=float("nan")) == pytest.approx(98.0 / 3.0)


def test_single_step_finds_the_jump_and_nothing_else():
    step = single_step(FIVE, FLAT_THEN_STEP, noise=0.02)
    assert (step.jump, step.n_before, step.n_after, step.tolerance) == pytest.approx((0.6, 1e9, 1e10, 0.04))
    # Wobbles within 2 noise floors are flat; one beyond them is a second step.
    assert single_step(FIVE, [0.01, 0.0, 0.03, 0.6, 0.59], noise=0.02) is not None
    assert single_step(FIVE, [0.0, 0.05, 0.05, 0.6, 0.6], noise=0.02) is None
    assert single_step(FIVE, np.linspace(0, 0.6, 5)) is None
    assert single_step(FIVE[:2], [0.0, 0.6]) is None  # two sizes: nothing is flat


def test_step_verdict_names_the_jump_and_checks_the_twin():
    smooth = np.linspace(8.0, 4.0, 5)  # edit distance falls steadily
    v = mirage_verdict("recall", FIVE, "exact_match", FLAT_THEN_STEP, {"edit_distance": smooth}, noise=0.02)
    assert v.verdict == ("step: flat within noise (±0.04) then a jump of +0.6 between sizes 1e+09 and 1e+10 "
                         "under exact_match (score 30); a mirage: gone under edit_distance (4)")
    assert v.step is not None and np.isfinite(v.discrete_statistic)
    alone = mirage_verdict("recall", FIVE, "exact_match", FLAT_THEN_STEP, {})
    assert alone.verdict.startswith("step:") and alone.verdict.endswith("no continuous twin recorded to check it")
    assert alone.discrete_statistic == pytest.approx(1000.0)
    jumping_twin = mirage_verdict("recall", FIVE, "exact_match", FLAT_THEN_STEP, {"target_loglik": FLAT_THEN_STEP - 3})
    assert jumping_twin.verdict.endswith("it survives under target_loglik (1e+03)")


def test_a_step_smaller_than_the_noise_is_no_jump():
    v = mirage_verdict("t", FIVE, "acc", [0.25, 0.25, 0.25, 0.35, 0.35], {}, noise=0.04)
    # score 0.1 / 0.04 = 2.5 < 2 x (5 - 1): not emergent, so not called a step either
    assert v.verdict.startswith("no jump") and v.step is None
