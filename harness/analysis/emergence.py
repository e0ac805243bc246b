"""Emergence score and the mirage check (Schaeffer et al. 2023, "Are Emergent Abilities of Large
Language Models a Mirage?").

Emergence score of a curve y over sizes sorted ascending:
    sign(argmax y - argmin y) * (max y - min y) / sqrt(median((y_i - y_{i-1})^2)).
A curve that climbs in steady steps scores about (number of sizes - 1); one that sits flat and then
jumps scores far more. We call a curve "emergent-looking" when its score is at least
EMERGENT_RATIO times that steady-climb value. The mirage check asks whether a jump seen under a
discrete metric (accuracy, exact match) is still there under its continuous twin.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EMERGENT_RATIO = 2.0
# Orientation: the score is computed on "higher is better" values so a positive score means improvement.
LOWER_IS_BETTER = frozenset(
    {"brier", "edit_distance", "bits_per_byte", "nll_per_token", "word_perplexity", "byte_perplexity", "perplexity"}
)


def oriented(metric: str, y) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    return -y if metric in LOWER_IS_BETTER else y


def emergence_statistic(n, y) -> float:
    """Schaeffer et al.'s emergence score of y against sizes n (any order; sorted here)."""
    order = np.argsort(np.asarray(n, dtype=float), kind="stable")
    y = np.asarray(y, dtype=float)[order]
    if y.size < 2 or not np.all(np.isfinite(y)):
        return float("nan")
    spread = y.max() - y.min()
    if spread == 0:
        return 0.0
    sign = np.sign(int(np.argmax(y)) - int(np.argmin(y)))
    step = np.sqrt(np.median(np.diff(y) ** 2))
    return float(sign * np.inf) if step == 0 else float(sign * spread / step)


def emergence_statistics(n, ys: np.ndarray) -> np.ndarray:
    """Score for each row of ys (R, P): the bootstrap distribution of the score."""
    return np.array([emergence_statistic(n, row) for row in np.atleast_2d(ys)])


def looks_emergent(score: float, n_sizes: int) -> bool:
    return bool(not np.isnan(score) and score >= EMERGENT_RATIO * max(n_sizes - 1, 1))


@dataclass(frozen=True)
class MirageVerdict:
    task: str
    discrete_metric: str
    discrete_statistic: float
    twin_statistics: dict[str, float]  # continuous metric -> score (oriented: higher is better)
    discrete_emergent: bool
    twins_emergent: dict[str, bool]
    verdict: str  # one sentence for the report


def mirage_verdict(task: str, n, discrete_metric: str, discrete, twins: dict[str, np.ndarray]) -> MirageVerdict:
    """Does a jump under the discrete metric survive under the continuous twins?"""
    sizes = np.unique(np.asarray(n, dtype=float)).size
    d_score = emergence_statistic(n, oriented(discrete_metric, discrete))
    t_scores = {m: emergence_statistic(n, oriented(m, y)) for m, y in twins.items()}
    d_em = looks_emergent(d_score, sizes)
    t_em = {m: looks_emergent(s, sizes) for m, s in t_scores.items()}
    if not d_em:
        text = f"no jump under {discrete_metric} (score {d_score:.3g}; steady climb ~{sizes - 1})"
    elif not twins:
        text = f"jump under {discrete_metric} (score {d_score:.3g}); no continuous twin recorded to check it"
    elif not any(t_em.values()):
        text = (f"mirage: the jump under {discrete_metric} (score {d_score:.3g}) is gone under "
                + ", ".join(f"{m} ({s:.3g})" for m, s in t_scores.items()))
    else:
        kept = [m for m, e in t_em.items() if e]
        text = f"jump survives: {discrete_metric} (score {d_score:.3g}) and also " + ", ".join(
            f"{m} ({t_scores[m]:.3g})" for m in kept)
    return MirageVerdict(task, discrete_metric, d_score, t_scores, d_em, t_em, text)
