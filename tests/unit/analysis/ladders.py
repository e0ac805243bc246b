"""Synthetic ladders with a known L(N, D): every (N, D) point its own finished training run."""
from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis.series import Series

TRUTH = {"A": 400.0, "B": 1800.0, "E": 1.8, "alpha": 0.34, "beta": 0.36}
A_TRUE = TRUTH["beta"] / (TRUTH["alpha"] + TRUTH["beta"])  # 0.514
B_TRUE = TRUTH["alpha"] / (TRUTH["alpha"] + TRUTH["beta"])
CHINCHILLA_CSV = Path(__file__).resolve().parents[2] / "data" / "chinchilla_points.csv"


def law(n, d, p=TRUTH):
    return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]


def grid(k: int = 6, n_lo: float = 2e7, n_hi: float = 2e9, d_lo: float = 1e9):
    """k sizes x k token budgets, both log-spaced with the same step: C = 6ND repeats along the
    anti-diagonals, so the ladder has IsoFLOP profiles of 3..k points."""
    sizes = np.geomspace(n_lo, n_hi, k)
    tokens = np.geomspace(d_lo, d_lo * n_hi / n_lo, k)
    return np.repeat(sizes, k), np.tile(tokens, k)


def noisy(y, seed: int = 0, sd: float = 0.003):
    """Multiplicative run-to-run noise (0.3% by default)."""
    return y * np.exp(np.random.default_rng(seed).normal(0.0, sd, np.size(y)))


def runs(n, d, y, task: str = "wiki") -> Series:
    """One model per point (the Chinchilla design), no per-document samples."""
    models = tuple(f"n{a:.3e}-d{b:.3e}" for a, b in zip(n, d))
    return Series(task, "nll_per_token", "none", models, ("main",) * len(n), np.asarray(n, float),
                  np.asarray(d, float), np.asarray(y, float), None)


def one_schedule(n, d, y) -> Series:
    """The same points as checkpoints of one run per size."""
    sizes = np.unique(n)
    models = tuple(f"m{np.flatnonzero(sizes == a)[0]}" for a in n)
    return Series("wiki", "nll_per_token", "none", models, tuple(f"step{int(b)}" for b in d), np.asarray(n, float),
                  np.asarray(d, float), np.asarray(y, float), None)


def chinchilla_points(drop_highest: int = 5):
    """(N, D, loss) of Epoch's digitised Hoffmann et al. runs; Epoch drops the 5 highest losses."""
    df = pd.read_csv(CHINCHILLA_CSV).sort_values("loss")
    df = df.iloc[: len(df) - drop_highest]
    n = df["Model Size"].to_numpy(float)
    return n, df["Training FLOP"].to_numpy(float) / (6 * n), df["loss"].to_numpy(float)
