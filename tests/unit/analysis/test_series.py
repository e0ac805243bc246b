"""build_series finds the per-document column of a filtered metric for its paired bootstrap.

The results stage names a sample column `metric` under filter "none" and `metric,filter` under any
other filter (harness/results/metrics.py, aggregate_group). These tests build the two tables by hand
in that layout, so they pin down the analysis side of that naming contract.
"""
import numpy as np
import pandas as pd
import pytest

from harness.analysis.analyze import analyze_run
from harness.analysis.bootstrap import DocMatrix, paired_doc_bootstrap
from harness.analysis.series import build_series, task_seed

SIZES = (1e7, 1e8, 1e9, 1e10)
P_CORRECT = (0.1, 0.3, 0.6, 0.9)  # exact match per size under the filter the scores report
N_DOCS = 80


def _column(metric: str, flt: str) -> str:
    """The sample column name the results stage writes (harness/results/metrics.py)."""
    return metric if flt == "none" else f"{metric},{flt}"


def _tables(filters=("strict-match",), task="gsm", plain_column=False):
    """scores + samples for exact_match under `filters`; every filter gets its own per-document values."""
    rng = np.random.default_rng(0)
    scores, samples = [], []
    for i, n in enumerate(SIZES):
        docs = {"model": f"m{i}", "revision": "", "task": task, "doc_id": np.arange(N_DOCS)}
        for j, flt in enumerate(filters):
            hits = (rng.uniform(size=N_DOCS) < P_CORRECT[i] * (1 - 0.2 * j)).astype(float)
            docs[_column("exact_match", flt)] = hits
            scores.append({"model": f"m{i}", "revision": "", "task": task, "metric": "exact_match", "filter": flt,
                           "value": hits.mean(), "n_params_nonembedding": n, "tokens_trained": np.nan})
        if plain_column:
            docs["exact_match"] = np.zeros(N_DOCS)  # values under filter "none", which the scores do not report
        samples.append(pd.DataFrame(docs))
    return pd.DataFrame(scores), pd.concat(samples, ignore_index=True)


def test_sample_column_follows_the_results_naming():
    from harness.analysis.series import sample_column

    for metric, flt in (("exact_match", "none"), ("exact_match", "strict-match"), ("acc", "remove_whitespace")):
        assert sample_column(metric, flt) == _column(metric, flt)
    assert sample_column("exact_match", "none") == "exact_match"
    assert sample_column("exact_match", "strict-match") == "exact_match,strict-match"


def test_filtered_metric_gets_a_paired_bootstrap():
    scores, samples = _tables()
    s = build_series(scores, samples, "gsm", "exact_match", final_only=True, n_boot=200, seed=0)
    assert s.filter == "strict-match"
    assert s.boot is not None and s.boot.shape == (200, len(SIZES))
    assert s.ci_method.startswith("paired document bootstrap")
    lo, hi = np.percentile(s.boot, [2.5, 97.5], axis=0)
    assert np.all(hi - lo > 0.05)  # a real spread over documents, not a degenerate interval
    assert np.all((lo < s.y) & (s.y < hi))


def test_the_bootstrap_uses_the_filter_the_series_reports():
    # No "none" row: pick_filter takes the first filter by name; its column must be the one resampled.
    scores, samples = _tables(filters=("strict-match", "flexible-extract"), plain_column=True)
    s = build_series(scores, samples, "gsm", "exact_match", final_only=True, n_boot=50, seed=0)
    assert s.filter == "flexible-extract" and s.boot is not None
    column = np.stack([samples.loc[samples.model == m, "exact_match,flexible-extract"].to_numpy() for m in s.models])
    docs = DocMatrix(numer=column, denom=np.ones_like(column), doc_ids=tuple(range(N_DOCS)))
    assert docs.values() == pytest.approx(s.y)
    expected = paired_doc_bootstrap(docs, 50, task_seed(0, "gsm"), base=s.y)
    np.testing.assert_allclose(s.boot, expected)


def test_filtered_metric_does_not_borrow_the_unfiltered_column():
    scores, samples = _tables(plain_column=True)
    samples = samples.drop(columns=["exact_match,strict-match"])
    s = build_series(scores, samples, "gsm", "exact_match", final_only=True, n_boot=50, seed=0)
    assert s.filter == "strict-match" and s.boot is None and s.ci_method == "none"


def test_unfiltered_metric_still_uses_the_plain_column():
    scores, samples = _tables(filters=("none",))
    assert "exact_match" in samples.columns
    s = build_series(scores, samples, "gsm", "exact_match", final_only=True, n_boot=50, seed=0)
    assert s.filter == "none" and s.boot is not None and s.boot.shape == (50, len(SIZES))


def test_analyze_run_reports_intervals_for_a_filtered_metric(tmp_path):
    scores, samples = _tables()
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    scores.to_parquet(run / "scores.parquet")
    samples.to_parquet(run / "samples" / "gsm.parquet")
    analyze_run(run, n_boot=40, seed=0)
    fits = pd.read_parquet(run / "fits.parquet")
    emergence = fits[(fits.metric == "exact_match") & (fits.law == "emergence")].iloc[0]
    assert emergence["filter"] == "strict-match"
    assert emergence.ci_method.startswith("paired document bootstrap") and emergence.n_boot_ok == 40
    assert np.isfinite(emergence.ci_low) and emergence.ci_low < emergence.ci_high


def test_sizes_are_compared_at_the_largest_token_count_they_share():
    # An IsoFLOP ladder: every size has its own budgets and one shared (4096 steps here). The curves
    # compare the sizes there, not each at its own longest run; with nothing shared, each size's last.
    import pandas as pd

    from harness.analysis.series import final_revisions

    rows = pd.DataFrame({"model": ["s"] * 3 + ["l"] * 3,
                         "revision": ["step100", "step4096", "step9000", "step50", "step2000", "step4096"],
                         "tokens_trained": [100, 4096, 9000, 50, 2000, 4096]})
    assert final_revisions(rows)[["model", "revision"]].values.tolist() == [["l", "step4096"], ["s", "step4096"]]
    apart = rows[rows.revision != "step4096"]
    assert final_revisions(apart)["revision"].tolist() == ["step2000", "step9000"]
    # A token count missing: no shared count is trusted, each size's last in training order (the plan's
    # rule, where a known token count ranks above an unknown one).
    unknown = apart.assign(tokens_trained=[100, None, 50, 2000])
    assert final_revisions(unknown)["revision"].tolist() == ["step2000", "step100"]
