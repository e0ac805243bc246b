"""Paired document bootstrap: intervals cover the truth near their nominal rate; pairing matters."""
import numpy as np
import pytest

from harness.analysis.bootstrap import (DocMatrix, doc_weights, model_resamples, paired_doc_bootstrap,
                               percentile_interval, refit_each)
from harness.analysis.fit import fit_power_law_batch

SIZES = np.geomspace(1e7, 3e9, 6)
TRUTH = {"E": 1.5, "A": 60.0, "alpha": 0.3}


def _synthetic_docs(rng, n_docs=200):
    """Per-document losses: the true curve + a document difficulty shared by all models + noise."""
    curve = TRUTH["E"] + TRUTH["A"] / SIZES ** TRUTH["alpha"]
    difficulty = rng.normal(0, 0.5, n_docs)
    noise = rng.normal(0, 0.15, (SIZES.size, n_docs))
    return DocMatrix(numer=curve[:, None] + difficulty[None, :] + noise, denom=np.ones((SIZES.size, n_docs)),
                     doc_ids=tuple(range(n_docs)))


def test_doc_weights_draw_n_documents_per_row():
    w = doc_weights(50, 7, seed=0)
    assert w.shape == (7, 50) and np.all(w.sum(1) == 50)


def test_ratio_metric_resamples_sums_not_means():
    docs = DocMatrix(numer=np.array([[1.0, 3.0]]), denom=np.array([[1.0, 1.0 + 1.0]]), doc_ids=(0, 1))
    assert docs.values()[0] == pytest.approx(4.0 / 3.0)
    assert docs.values(np.array([[2.0, 0.0]]))[0, 0] == pytest.approx(1.0)


def test_pairing_keeps_between_model_differences_tight():
    docs = _synthetic_docs(np.random.default_rng(0))
    boot = paired_doc_bootstrap(docs, 400, seed=1)
    paired_sd = np.std(boot[:, 0] - boot[:, -1])
    # Unpaired: each model gets its own documents; the shared difficulty no longer cancels.
    w0, w1 = doc_weights(200, 400, 2), doc_weights(200, 400, 3)
    unpaired = docs.values(w0)[:, 0] - docs.values(w1)[:, -1]
    assert paired_sd < 0.5 * np.std(unpaired)


def test_shift_to_base_values_keeps_centre():
    docs = _synthetic_docs(np.random.default_rng(4))
    base = docs.values() + 0.01
    boot = paired_doc_bootstrap(docs, 200, seed=5, base=base)
    np.testing.assert_allclose(np.median(boot, axis=0), base, atol=0.02)


def test_alpha_interval_covers_truth_near_nominal_rate():
    rng = np.random.default_rng(6)
    hits, reps = 0, 60
    for rep in range(reps):
        docs = _synthetic_docs(rng)
        boot = paired_doc_bootstrap(docs, 200, seed=rep)
        _, _, alpha = fit_power_law_batch(SIZES, boot)
        lo, hi = percentile_interval(alpha, level=0.9)
        hits += lo <= TRUTH["alpha"] <= hi
    coverage = hits / reps
    # 90% nominal; with 60 repetitions the binomial sd is ~0.04.
    assert 0.78 <= coverage <= 0.99, coverage


def test_model_resamples_keep_three_sizes_and_refit_drops_failures():
    groups = np.array([0, 1, 2, 3, 4])
    draws = model_resamples(5, 100, seed=0, groups=groups)
    assert len(draws) > 50 and all(np.unique(row).size >= 3 for row in draws)

    def fit(row):
        if row[0] < 0:
            raise ValueError("bad")
        return {"m": row.mean()}

    out = refit_each(fit, np.array([[1.0, 3.0], [-1.0, 0.0], [2.0, 2.0]]))
    np.testing.assert_array_equal(np.isnan(out["m"]), [False, True, False])
    assert all(np.isnan(percentile_interval(np.array([1.0, np.nan] * 4))))
    assert percentile_interval(np.arange(101.0), level=0.9) == pytest.approx((5.0, 95.0))
