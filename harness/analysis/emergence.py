"""Emergence score and the mirage check (Schaeffer et al. 2023, "Are Emergent Abilities of Large
Language Models a Mirage?").

Emergence score of a curve y over sizes sorted ascending:
    sign(argmax y - argmin y) * (max y - min y) / sqrt(median((y_i - y_{i-1})^2)).
A curve that climbs in steady steps scores about (number of sizes - 1); one that sits flat and then
jumps scores far more. We call a curve "emergent-looking" when its score is at least
EMERGENT_RATIO times that steady-climb value. The mirage check asks whether a jump seen under a
discrete metric (accuracy, exact match) is still there under its continuous twin.

A curve that sits exactly flat and then jumps once has a median squared step of 0, so Schaeffer's
score is infinite. We floor the denominator at the measurement noise (the documents' standard error,
when the caller has it) or, without one, at REL_FLOOR times the spread; the score is then finite,
and such a curve gets the verdict "step" (`single_step`), which says where the jump is.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EMERGENT_RATIO = 2.0
# Without a measured noise the floor is 1/1000 of the spread: far below any real step between sizes
# (it changes no score of a curve that moves at every size), and a flat-then-jump curve scores 1000.
REL_FLOOR = 1e-3
STEP_NOISE = 2.0  # a change between adjacent sizes within this many noise floors is "flat"
# Orientation: the score is computed on "higher is better" values so a positive score means improvement.
LOWER_IS_BETTER = frozenset(
    {"brier", "edit_distance", "bits_per_byte", "nll_per_token", "word_perplexity", "byte_perplexity", "perplexity"}
)


def oriented(metric: str, y) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    return -y if metric in LOWER_IS_BETTER else y


def noise_floor(y, noise: float | None = None) -> float:
    """The smallest denominator the score may have: `noise` when it is a positive number, else
    REL_FLOOR times the spread of y.

    >>> noise_floor([0.0, 0.0, 0.5]), noise_floor([0.0, 0.0, 0.5], noise=0.02)
    (0.0005, 0.02)
    """
    if noise is not None and np.isfinite(noise) and noise > 0:
        return float(noise)
    y = np.asarray(y, dtype=float)
    return float(REL_FLOOR * (y.max() - y.min())) if y.size else 0.0


def emergence_statistic(n, y, noise: float | None = None) -> float:
    """Schaeffer et al.'s emergence score of y against sizes n (any order; sorted here), with the
    denominator floored at `noise_floor(y, noise)` so a flat-then-jump curve scores finitely.

    >>> emergence_statistic([1e7, 1e8, 1e9, 1e10], [0.0, 0.0, 0.0, 0.6])
    1000.0
    >>> emergence_statistic([1e7, 1e8, 1e9, 1e10], [0.0, 0.0, 0.0, 0.6], noise=0.02)
    30.0
    """
    order = np.argsort(np.asarray(n, dtype=float), kind="stable")
    y = np.asarray(y, dtype=float)[order]
    if y.size < 2 or not np.all(np.isfinite(y)):
        return float("nan")
    spread = y.max() - y.min()
    if spread == 0:
        return 0.0
    sign = np.sign(int(np.argmax(y)) - int(np.argmin(y)))
    step = max(float(np.sqrt(np.median(np.diff(y) ** 2))), noise_floor(y, noise))
    return float(sign * spread / step)


def emergence_statistics(n, ys: np.ndarray, noise: float | None = None) -> np.ndarray:
    """Score for each row of ys (R, P): the bootstrap distribution of the score."""
    return np.array([emergence_statistic(n, row, noise) for row in np.atleast_2d(ys)])


@dataclass(frozen=True)
class Step:
    """A curve that is flat (within the noise) on both sides of one jump between adjacent sizes."""

    jump: float  # y after minus y before, in the metric's own units (as measured, not oriented)
    n_before: float  # the size just below the jump
    n_after: float  # the size just above it
    tolerance: float  # the largest change counted as flat (STEP_NOISE noise floors)

    def text(self) -> str:
        return (f"step: flat within noise (±{self.tolerance:.2g}) then a jump of {self.jump:+.3g} "
                f"between sizes {self.n_before:.3g} and {self.n_after:.3g}")


def single_step(n, y, noise: float | None = None) -> Step | None:
    """The Step when exactly one change between adjacent sizes exceeds STEP_NOISE noise floors
    (and there are >= 3 sizes, so that something is flat); else None.

    >>> single_step([1e7, 1e8, 1e9, 1e10], [0.0, 0.0, 0.0, 0.6]).text()
    'step: flat within noise (±0.0012) then a jump of +0.6 between sizes 1e+09 and 1e+10'
    >>> single_step([1e7, 1e8, 1e9, 1e10], [0.0, 0.2, 0.4, 0.6]) is None
    True
    """
    n = np.asarray(n, dtype=float)
    order = np.argsort(n, kind="stable")
    n, y = n[order], np.asarray(y, dtype=float)[order]
    if y.size < 3 or not np.all(np.isfinite(y)) or np.ptp(y) == 0:
        return None
    tol = STEP_NOISE * noise_floor(y, noise)
    big = np.flatnonzero(np.abs(np.diff(y)) > tol)
    if big.size != 1:
        return None
    i = int(big[0])
    return Step(jump=float(y[i + 1] - y[i]), n_before=float(n[i]), n_after=float(n[i + 1]), tolerance=tol)


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
    step: Step | None = None  # set when the discrete curve is one jump between flat stretches


def mirage_verdict(task: str, n, discrete_metric: str, discrete, twins: dict[str, np.ndarray],
                   noise: float | None = None, twin_noise: dict[str, float] | None = None) -> MirageVerdict:
    """Does a jump under the discrete metric survive under the continuous twins?

    `noise` (the discrete metric's documents' standard error, say) and `twin_noise` (per twin) floor
    the scores' denominators (`emergence_statistic`); without them the floor is relative to the spread.
    """
    twin_noise = twin_noise or {}
    sizes = np.unique(np.asarray(n, dtype=float)).size
    d_score = emergence_statistic(n, oriented(discrete_metric, discrete), noise)
    t_scores = {m: emergence_statistic(n, oriented(m, y), twin_noise.get(m)) for m, y in twins.items()}
    d_em = looks_emergent(d_score, sizes)
    t_em = {m: looks_emergent(s, sizes) for m, s in t_scores.items()}
    step = single_step(n, discrete, noise) if d_em else None
    if not d_em:
        text = f"no jump under {discrete_metric} (score {d_score:.3g}; steady climb ~{sizes - 1})"
    elif step is not None:
        text = f"{step.text()} under {discrete_metric} (score {d_score:.3g}); " + _twins_text(t_scores, t_em)
    elif not twins:
        text = f"jump under {discrete_metric} (score {d_score:.3g}); no continuous twin recorded to check it"
    elif not any(t_em.values()):
        text = (f"mirage: the jump under {discrete_metric} (score {d_score:.3g}) is gone under "
                + ", ".join(f"{m} ({s:.3g})" for m, s in t_scores.items()))
    else:
        kept = [m for m, e in t_em.items() if e]
        text = f"jump survives: {discrete_metric} (score {d_score:.3g}) and also " + ", ".join(
            f"{m} ({t_scores[m]:.3g})" for m in kept)
    return MirageVerdict(task, discrete_metric, d_score, t_scores, d_em, t_em, text, step)


def _twins_text(t_scores: dict[str, float], t_em: dict[str, bool]) -> str:
    """What the continuous twins say about a step: the second half of the step verdict."""
    if not t_scores:
        return "no continuous twin recorded to check it"
    if not any(t_em.values()):
        return "a mirage: gone under " + ", ".join(f"{m} ({s:.3g})" for m, s in t_scores.items())
    return "it survives under " + ", ".join(f"{m} ({t_scores[m]:.3g})" for m, e in t_em.items() if e)
