"""signal_noise on hand-built scores.parquet rows whose noise, spread and verdict are known exactly."""
import math

import numpy as np
import pandas as pd
import pytest

from harness.analysis.signal import NO_SIGNAL, SIGNAL, UNKNOWN, judge, signal_noise

SIZES = (1e7, 1e8, 1e9, 1e10)


def _rows(task="t", metric="acc", flt="none", finals=(0.54, 0.64, 0.74, 0.84), tail=(-0.04, -0.02, 0.0),
          stderr=0.01, n=1000, early=(-0.2,)):
    """One model per size with checkpoints whose last three are final + tail; `early` adds earlier
    checkpoints. Revisions are listed out of order, and step9000 < step10000 < step11000 only
    numerically, so a string sort would get the training order wrong."""
    rows = []
    for i, (size, final) in enumerate(zip(SIZES, finals)):
        offsets = list(early) + list(tail)
        steps = [1000 * (8 - len(early) + 1 + j) for j in range(len(offsets))]  # ..., 9000, 10000, 11000
        for step, off in reversed(list(zip(steps, offsets))):
            rows.append({"model": f"m{i}", "revision": f"step{step}", "task": task, "metric": metric, "filter": flt,
                         "value": final + off, "stderr": stderr, "n": n, "n_params_nonembedding": size,
                         "tokens_trained": np.nan})
    return rows


def test_noise_spread_and_signal_from_known_values():
    sn = signal_noise(pd.DataFrame(_rows()), "t", "acc", "none", chance=0.25)
    # Last three checkpoints of every run: final - 0.04, - 0.02, + 0 -> SD 0.02 (ddof 1).
    assert sn.noise == pytest.approx(0.02) and sn.n_sizes_with_noise == 4 and sn.n_sizes == 4
    assert sn.spread == pytest.approx(np.std([0.54, 0.64, 0.74, 0.84], ddof=1))
    assert sn.range == pytest.approx(0.30) and sn.snr == pytest.approx(sn.spread / 0.02)
    assert sn.heineman_snr == pytest.approx(15.0)
    assert sn.doc_stderr == pytest.approx(0.01) and sn.chance == 0.25
    assert sn.best_above_chance_z == pytest.approx((0.84 - 0.25) / 0.01)
    assert sn.verdict == SIGNAL and sn.reason.startswith("signal: the spread across sizes (SD 0.13) is 6.5x")


def test_every_size_at_chance_is_no_signal():
    rows = _rows(finals=(0.25, 0.26, 0.24, 0.27), stderr=0.014, tail=(0.0, 0.0, 0.0))
    sn = signal_noise(pd.DataFrame(rows), "t", "acc", "none", chance=0.25)
    assert sn.best_above_chance_z == pytest.approx(0.02 / 0.014)
    assert sn.verdict == NO_SIGNAL
    assert sn.reason == "no signal: no size beats chance 0.25 by more than 2 standard errors (best 1.4)"


def test_spread_within_checkpoint_noise_is_no_signal():
    rows = _rows(finals=(0.50, 0.51, 0.52, 0.53), tail=(-0.06, 0.03, 0.0))
    sn = signal_noise(pd.DataFrame(rows), "t", "acc", "none", chance=None)
    assert sn.noise == pytest.approx(np.std([-0.06, 0.03, 0.0], ddof=1))
    assert sn.spread < sn.noise and sn.verdict == NO_SIGNAL
    assert "does not exceed the checkpoint noise 0.046 (SD over the last 3 checkpoints of 4 run(s))" in sn.reason


def test_without_three_checkpoints_the_documents_stderr_stands_in():
    rows = _rows(finals=(0.50, 0.51, 0.52, 0.53), tail=(0.0,), early=(), stderr=0.02)
    sn = signal_noise(pd.DataFrame(rows), "t", "acc", "none", chance=None)
    assert math.isnan(sn.noise) and sn.n_sizes_with_noise == 0 and math.isnan(sn.snr)
    assert sn.verdict == NO_SIGNAL
    assert sn.reason.endswith("documents' standard error 0.02 (no run has 3 checkpoints to measure noise)")


def test_final_checkpoint_follows_training_order_not_string_order():
    # The last revision in training order is step11000 (value final + 0); string order would pick step9000.
    sn = signal_noise(pd.DataFrame(_rows(tail=(0.3, 0.2, 0.0))), "t", "acc", "none", chance=None)
    assert sn.range == pytest.approx(0.30) and sn.spread == pytest.approx(np.std([0.54, 0.64, 0.74, 0.84], ddof=1))


def test_lower_is_better_metrics_have_no_chance():
    rows = _rows(metric="brier", finals=(0.75, 0.70, 0.65, 0.60))
    sn = signal_noise(pd.DataFrame(rows), "t", "brier", "none", chance=0.25)
    assert sn.chance is None and math.isnan(sn.best_above_chance_z) and sn.verdict == SIGNAL


def test_missing_stderr_uses_guessings_binomial_error():
    rows = _rows(finals=(0.25, 0.26, 0.27, 0.30), stderr=None, n=300)
    sn = signal_noise(pd.DataFrame(rows), "t", "acc", "none", chance=0.25)
    assert math.isnan(sn.doc_stderr)
    assert sn.best_above_chance_z == pytest.approx(0.05 / math.sqrt(0.25 * 0.75 / 300))


def test_only_the_requested_rows_count_and_repeats_keep_the_last():
    rows = _rows() + _rows(flt="other", finals=(0.0, 0.0, 0.0, 1.0)) + _rows(task="u", finals=(0.1, 0.1, 0.1, 0.1))
    repeat = dict(rows[0], value=0.99)  # m0 step11000 written again by a resumed run
    sn = signal_noise(pd.DataFrame(rows + [repeat]), "t", "acc", "none", chance=None)
    assert sn.n_sizes == 4 and sn.range == pytest.approx(0.99 - 0.64)


def test_nothing_to_measure_with_is_unknown():
    rows = _rows(finals=(0.5,), tail=(0.0,), early=(), stderr=None)[:1]
    sn = signal_noise(pd.DataFrame(rows), "t", "acc", "none", chance=None)
    assert sn.verdict == UNKNOWN and sn.reason == "signal unknown: fewer than 2 sizes"
    assert judge(0.1, float("nan"), 0, float("nan"), None, float("nan"))[0] == UNKNOWN
