"""The continuous twins: edit distance and Brier score."""

from __future__ import annotations

import math

from harness.results.metrics import brier_score, levenshtein


def test_levenshtein():
    assert levenshtein("57", "57") == 0
    assert levenshtein("57", "75") == 2
    assert levenshtein("", "123") == 3
    assert levenshtein("kitten", "sitting") == 3


def test_brier_score_bounds_and_value():
    # Uniform over 4 choices: (0.25-1)^2 + 3 * 0.25^2 = 0.75
    assert math.isclose(brier_score([-1.0] * 4, 0), 0.75)
    assert brier_score([0.0, -50.0], 0) < 1e-20  # confident and right
    assert math.isclose(brier_score([-50.0, 0.0], 0), 2.0, rel_tol=1e-9)  # confident and wrong
