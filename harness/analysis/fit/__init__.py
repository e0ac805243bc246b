"""Scaling-law fits: pure functions returning frozen dataclasses with `.params` and `.predict`.

- `fit_power_law(n, y)`: y = E + A / n^alpha (loss or perplexity against parameters).
- `fit_chinchilla(n, d, loss)`: L(N, D) = E + A / N^alpha + B / D^beta, Chinchilla Approach 3,
  with the compute-optimal frontier `.frontier(C) -> (N_opt, D_opt)`.
- `fit_sigmoid(n, acc, floor=..., ceiling=...)`: the emergence curve in log10 n; `.threshold` is N*.
All raise ValueError with a one-line reason on unusable input (too few sizes, NaN, constant).
"""
from harness.analysis.fit._common import Goodness
from harness.analysis.fit.chinchilla import ChinchillaFit, chinchilla_frontier, fit_chinchilla, fit_chinchilla_batch
from harness.analysis.fit.power_law import PowerLawFit, fit_power_law, fit_power_law_batch
from harness.analysis.fit.sigmoid import SigmoidFit, fit_sigmoid

# Published fits: Hoffmann et al. 2022, and Epoch AI's Approach-3 replication on the points they
# digitised from the paper (tests/data/README.md; tests/unit/analysis/test_fit.py reproduces it).
CHINCHILLA_PAPER = {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28}
CHINCHILLA_EPOCH = {"A": 477.9, "B": 2143.0, "E": 1.817, "alpha": 0.3473, "beta": 0.3672}

__all__ = [
    "CHINCHILLA_EPOCH", "CHINCHILLA_PAPER", "ChinchillaFit", "Goodness", "PowerLawFit", "SigmoidFit",
    "chinchilla_frontier", "fit_chinchilla", "fit_chinchilla_batch", "fit_power_law", "fit_power_law_batch", "fit_sigmoid",
]
