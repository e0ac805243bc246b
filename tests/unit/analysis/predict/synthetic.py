"""Synthetic ladders with a known truth and the noise of a real benchmark, for the predictors' tests.

Sizes are spaced like the Pythia suite (2e7 .. 1.2e10 non-embedding parameters, seven sizes);
accuracies are binomial over `n_docs` documents, losses carry Gaussian noise. Four truths:
    sigmoid     what the sigmoid method assumes (floor at chance, free ceiling below 1)
    bend        accuracy linear in log N whose slope doubles halfway up the ladder: a law no method knows
    power_loss  loss = E + A / N^alpha, what the power law assumes
    broken_loss a power law whose exponent changes at 1e9 (a broken power law): unknown to the fit
"""
from __future__ import annotations

import numpy as np
import pandas as pd

SIZES = np.geomspace(2e7, 1.2e10, 7)
TOKENS = 3e11


def _accuracy_truth(kind: str, rng: np.random.Generator, chance: float) -> np.ndarray:
    u = np.log10(SIZES)
    if kind == "sigmoid":
        x0, k, ceiling = rng.uniform(8.0, 10.5), rng.uniform(0.8, 2.5), rng.uniform(0.75, 0.95)
        return chance + (ceiling - chance) / (1.0 + np.exp(-k * np.log(10) * (u - x0) / np.log(10)))
    slope = rng.uniform(0.03, 0.06)
    kink = u[3]
    y = chance + 0.02 + slope * (u - u[0]) + slope * np.maximum(u - kink, 0.0)  # the slope doubles at the kink
    return np.clip(y, chance, 0.97)


def _loss_truth(kind: str, rng: np.random.Generator) -> np.ndarray:
    e, a, alpha = rng.uniform(1.5, 2.5), rng.uniform(50, 400), rng.uniform(0.25, 0.4)
    if kind == "power_loss":
        return e + a / SIZES**alpha
    pivot = 1e9
    beta = alpha * rng.uniform(0.5, 0.7)  # flatter beyond the pivot
    below = e + a / SIZES**alpha
    above = e + a / pivot**alpha * (pivot / SIZES) ** beta
    return np.where(SIZES < pivot, below, above)


def ladder_scores(kind: str, seed: int, n_docs: int = 1500, chance: float = 0.25) -> tuple[pd.DataFrame, str, float]:
    """A scores table (the columns `analyze.load_scores` gives) of one synthetic task, its metric
    and the true value at the largest size."""
    rng = np.random.default_rng(seed)
    if kind in ("sigmoid", "bend"):
        truth = _accuracy_truth(kind, rng, chance)
        value = rng.binomial(n_docs, truth) / n_docs
        stderr = np.sqrt(value * (1 - value) / (n_docs - 1))
        metric = "acc"
    else:
        truth = _loss_truth(kind, rng)
        sd = 0.004 * truth  # ~0.4% document noise on a mean loss of a few thousand documents
        value = truth + rng.normal(0.0, sd)
        stderr = sd
        metric = "bits_per_byte"
    frame = pd.DataFrame({
        "model": [f"m{i}" for i in range(SIZES.size)], "revision": "main", "task": "synthetic", "metric": metric,
        "filter": "none", "value": value, "stderr": stderr, "n": n_docs, "n_params": SIZES,
        "n_params_nonembedding": SIZES, "tokens_trained": TOKENS})
    return frame, metric, float(truth[-1])
