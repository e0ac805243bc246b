"""The results contract: one Arrow schema per table of a run folder, validated on write.

Layout of a run folder (README, "Results"):
    manifest.json
    requests/<model>/<revision>/<task>/<shard-key>.parquet   one row per request (written per shard)
    samples/<model>/<revision>/<task>.parquet                one row per document (derived from requests)
    scores.parquet                                           one row per (model, revision, task, metric, filter)
    fits.parquet, bands.parquet, backtest.parquet            written by `harness analyze`
"""

from __future__ import annotations

import pyarrow as pa

REQUESTS_SCHEMA = pa.schema([
    ("model", pa.string()),
    ("revision", pa.string()),
    ("task", pa.string()),
    ("doc_id", pa.int64()),
    # -1 marks the harness's own request: log-likelihood of the gold target of a generation task.
    ("request_idx", pa.int64()),
    ("request_type", pa.string()),
    ("loglikelihood", pa.float64()),
    ("is_greedy", pa.bool_()),
    ("n_tokens", pa.int64()),
    ("generation", pa.string()),
    ("shard", pa.string()),
])

# Samples carry one float column per scalar lm-eval metric, so only the fixed part is typed here; the
# metric columns follow it in name order, the same in every file of a folder (results.store.write_samples).
SAMPLES_FIXED = pa.schema([
    ("model", pa.string()),
    ("revision", pa.string()),
    ("task", pa.string()),
    ("doc_id", pa.int64()),
    ("target_loglik", pa.float64()),
    ("brier", pa.float64()),
    ("edit_distance", pa.float64()),
    ("n_tokens", pa.int64()),
    ("n_bytes", pa.int64()),
    ("n_words", pa.int64()),
    ("n_choices", pa.int64()),  # answers offered (multiple choice): 1 / n_choices is guessing's accuracy
])

SCORES_SCHEMA = pa.schema([
    ("model", pa.string()),
    ("revision", pa.string()),
    ("task", pa.string()),
    ("metric", pa.string()),
    ("filter", pa.string()),
    ("value", pa.float64()),
    ("stderr", pa.float64()),
    ("n", pa.int64()),
    ("n_params", pa.int64()),
    ("n_params_nonembedding", pa.int64()),
    ("tokens_trained", pa.int64()),
    # True: the revision is a finished learning-rate schedule (a run trained for exactly tokens_trained);
    # False: a mid-schedule checkpoint; null: unknown (imports, older results). Last: readers of older
    # files that lack it treat it as null.
    ("finished_schedule", pa.bool_()),
])


def sample_column(metric: str, filter_name: str) -> str:
    """The per-document column of a metric in samples/: `metric` under filter "none", else
    `metric,filter` (lm-eval's own key), so that filtered and unfiltered values never collide.

    >>> sample_column("acc", "none"), sample_column("exact_match", "strict-match")
    ('acc', 'exact_match,strict-match')
    """
    return metric if filter_name == "none" else f"{metric},{filter_name}"
