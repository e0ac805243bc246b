"""Bootstrap intervals: over documents, paired across models; and over models (points) for fits.

Paired over documents means one set of resampled document ids is applied to every model, so the
correlation between models (a hard document is hard for all of them) is kept, as the curve's shape
depends on differences between sizes. Every resample is refitted; intervals are percentiles.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class DocMatrix:
    """Per-document values of one metric for M models on the same D documents.

    The metric for model m under document weights w is  sum_d w_d numer[m, d] / sum_d w_d denom[m, d]:
    a plain mean when denom is all ones, a ratio of sums for bits per byte (numer = -loglik,
    denom = bytes * ln 2) or nats per token (denom = tokens), as lm-eval aggregates them.
    """

    numer: np.ndarray  # (M, D)
    denom: np.ndarray  # (M, D)
    doc_ids: tuple[int, ...]

    def values(self, weights: np.ndarray | None = None) -> np.ndarray:
        """(M,) with unit weights, or (R, M) for a (R, D) weight matrix."""
        if weights is None:
            return self.numer.sum(1) / self.denom.sum(1)
        return (weights @ self.numer.T) / (weights @ self.denom.T)


def doc_weights(n_docs: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_docs) resampling counts: each row is a with-replacement draw of n_docs documents."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_docs, np.full(n_docs, 1.0 / n_docs), size=n_boot).astype(float)


def paired_doc_bootstrap(docs: DocMatrix, n_boot: int, seed: int, base: np.ndarray | None = None) -> np.ndarray:
    """(n_boot, M) resampled metric values, the same documents drawn for every model.

    With `base` (the run's official values, e.g. from scores.parquet) each resample is shifted to
    base + (resampled - full-sample), so intervals stay centred on the reported numbers even where
    an aggregate differs slightly from the per-document recomputation.
    """
    resampled = docs.values(doc_weights(len(docs.doc_ids), n_boot, seed))
    if base is None:
        return resampled
    return np.asarray(base, dtype=float)[None, :] + (resampled - docs.values()[None, :])


def model_resamples(n_points: int, n_boot: int, seed: int, groups: np.ndarray, min_groups: int = 3) -> np.ndarray:
    """(R, n_points) index draws over points, keeping only draws that cover >= min_groups sizes.

    Used when no per-document samples exist: the points (models) themselves are resampled.
    """
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_points, size=(n_boot, n_points))
    distinct = np.array([np.unique(groups[row]).size for row in draws])
    return draws[distinct >= min_groups]


def refit_each(fit: Callable[[np.ndarray], dict[str, float]], samples: np.ndarray) -> dict[str, np.ndarray]:
    """Apply `fit` to every resample row; a row whose fit raises ValueError is dropped (NaN)."""
    out: dict[str, np.ndarray] = {}
    for i, row in enumerate(samples):
        try:
            params = fit(row)
        except ValueError:
            continue
        for k, v in params.items():
            out.setdefault(k, np.full(len(samples), np.nan))[i] = float(v)
    return out


def percentile_interval(draws: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Equal-tailed percentile interval of the finite draws; NaNs when fewer than 10 survive."""
    draws = np.asarray(draws, dtype=float)
    draws = draws[np.isfinite(draws)]
    if draws.size < 10:
        return float("nan"), float("nan")
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(draws, [tail, 100.0 - tail])
    return float(lo), float(hi)
