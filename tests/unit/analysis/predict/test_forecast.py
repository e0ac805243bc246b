"""Predictors on ladders with a known truth: points, methods, the choice and the interval."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.analysis.predict import backtest_ladder, forecast, ladder_for
from harness.analysis.predict.intervals import FoldErrors, interval, law_variance
from harness.analysis.predict.points import from_loss, to_loss
from harness.analysis.predict.run import parse_target, predict_run

SIZES = np.geomspace(2e7, 1.2e10, 7)


def scores(metric, values, stderr=0.005, revisions=("main",), extra=()):
    rows = []
    for i, (n, v) in enumerate(zip(SIZES, values)):
        for j, rev in enumerate(revisions):
            rows.append({"model": f"m{i}", "revision": rev, "task": "t", "metric": metric, "filter": "none",
                         "value": float(v) if j == len(revisions) - 1 else float(v) * 0.5, "stderr": stderr,
                         "n": 1000, "n_params": n, "n_params_nonembedding": n, "tokens_trained": 3e11})
    return pd.DataFrame(rows + list(extra))


def test_loss_scales_round_trip():
    for metric, y in (("ppl", 12.0), ("target_loglik", -3.0), ("bits_per_byte", 0.9)):
        assert from_loss(metric, to_loss(metric, y)) == pytest.approx(y)
    assert to_loss("ppl", np.e) == pytest.approx(1.0) and to_loss("target_loglik", -2.0) == 2.0


def test_ladder_takes_the_final_checkpoint_of_each_model():
    truth = 2.0 + 300 / SIZES**0.3
    ladder = ladder_for(scores("bits_per_byte", truth, revisions=("step1", "step10")), "t", "bits_per_byte")
    assert ladder.revisions == ("step10",) * 7 and np.allclose(ladder.y, truth)
    assert ladder.below(SIZES[-1]).n.size == 6


def test_exact_power_law_is_predicted_exactly_with_a_tight_interval():
    truth = 2.0 + 300 / SIZES**0.3
    rows = backtest_ladder(ladder_for(scores("bits_per_byte", truth, stderr=1e-4), "t", "bits_per_byte"))
    (row,) = rows
    assert row["method"] == "power_law" and row["chosen"]
    assert row["predicted"] == pytest.approx(truth[-1], rel=1e-3)
    assert row["pi_low"] <= truth[-1] <= row["pi_high"] and row["pi_high"] - row["pi_low"] < 0.01


def test_choice_ignores_the_held_out_value():
    acc = 0.25 + 0.6 / (1 + np.exp(-2.0 * (np.log10(SIZES) - 9.3)))
    a = backtest_ladder(ladder_for(scores("acc", acc), "t", "acc", chance=0.25))
    moved = acc.copy()
    moved[-1] = 0.3  # a wildly different largest size: the choice must not move
    b = backtest_ladder(ladder_for(scores("acc", moved), "t", "acc", chance=0.25))
    pick = lambda rows: [r["method"] for r in rows if r["chosen"]]
    assert pick(a) == pick(b) and len(pick(a)) == 1
    assert [r["predicted"] for r in a] == pytest.approx([r["predicted"] for r in b])


def test_two_step_goes_through_the_task_loss():
    loss = 1.0 + 50 / SIZES**0.2
    acc = 0.25 + 0.7 / (1 + np.exp(4.0 * (loss - 2.0)))
    extra = scores("target_loglik", -loss).to_dict("records")
    rows = backtest_ladder(ladder_for(scores("acc", acc, extra=extra), "t", "acc", chance=0.25))
    two = next(r for r in rows if r["method"] == "two_step")
    assert two["predicted"] == pytest.approx(acc[-1], abs=0.01)


def test_interval_grows_with_distance_and_is_nan_without_folds():
    folds = FoldErrors(np.array([0.01, -0.02]), np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    near = interval(0.5, folds, 0.0, 1.0, 0.9)
    far = interval(0.5, folds, 0.0, 3.0, 0.9)
    assert far[1] - far[0] == pytest.approx(3 * (near[1] - near[0]))
    assert law_variance(folds, 1.0) == pytest.approx((0.01**2 + 2 * 0.02**2) / 3)
    none = FoldErrors(np.array([]), np.array([]), np.array([]))
    assert all(np.isnan(interval(0.5, none, 0.0, 1.0, 0.9)))


def test_three_sizes_predict_without_an_interval():
    truth = 2.0 + 300 / SIZES[:3]**0.3
    (p,) = forecast(ladder_for(scores("bits_per_byte", truth), "t", "bits_per_byte"), [(1e10, np.nan)])
    assert np.isfinite(p.predicted) and np.isnan(p.pi_low) and "too few sizes" in p.note


def test_predict_run_writes_both_tables_and_targets_parse():
    truth = 2.0 + 300 / SIZES**0.3
    back, ahead = predict_run(scores("bits_per_byte", truth), lambda t, m: None, [parse_target("3e10:6e11")])
    assert len(back) == 1 and len(ahead) == 1 and ahead.iloc[0].tokens == 6e11
    assert ahead.iloc[0].predicted == pytest.approx(2.0 + 300 / 3e10**0.3, rel=1e-3)
    with pytest.raises(ValueError, match="--predict"):
        parse_target("big")
