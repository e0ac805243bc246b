"""Emergence score (Schaeffer et al. 2023) and the mirage verdict on textbook curves."""
import numpy as np
import pytest

from harness.analysis.emergence import emergence_statistic, emergence_statistics, looks_emergent, mirage_verdict, oriented

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
