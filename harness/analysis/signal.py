"""Signal and noise of one (task, metric, filter) over a ladder, after Heineman et al. 2025, "Signal
and Noise: A Framework for Reducing Uncertainty in Language Model Evaluation".

Noise: how much the metric moves between a training run's last checkpoints, where the model hardly
changes: the standard deviation over each run's last NOISE_CHECKPOINTS checkpoints. Signal: how far
apart the sizes' final checkpoints are. A curve fitted to a task whose sizes differ by no more than
that noise, or where no size beats guessing, fits noise; the verdict says so before any fit does.

Definitions here (Heineman et al. divide both by a mean, "relative dispersion" max - min over the
mean and "relative standard deviation"; within one task the means nearly cancel in the ratio):
  spread  standard deviation across sizes of the final values (ddof 1); `range` is max - min, and
          `heineman_snr` = range / noise is the paper's ratio up to those means;
  noise   the mean over runs of the per-run standard deviation (ddof 1) of the last 3 checkpoints;
  snr     spread / noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analysis.emergence import LOWER_IS_BETTER
from harness.analysis.series import metric_rows
from harness.checkpoint import training_order

NOISE_CHECKPOINTS = 3  # Heineman et al. use a run's last checkpoints; 3 is the fewest with a usable SD
CHANCE_Z = 2.0  # "beats chance": more than this many standard errors above it
SIGNAL, NO_SIGNAL, UNKNOWN = "signal", "no signal", "unknown"


@dataclass(frozen=True)
class SignalNoise:
    """Signal, noise and the verdict for one (task, metric, filter); NaN where not measurable."""

    task: str
    metric: str
    filter: str
    n_sizes: int  # runs (models) with a finite final value: a size is one training run here
    noise: float  # mean over runs of the SD of their last NOISE_CHECKPOINTS values; NaN when no run has them
    n_sizes_with_noise: int  # runs that had NOISE_CHECKPOINTS finite checkpoints
    spread: float  # SD (ddof 1) of the final values across runs; NaN with fewer than 2
    range: float  # max - min of the final values
    snr: float  # spread / noise
    doc_stderr: float  # median over the final checkpoints of the documents' standard error; NaN when absent
    chance: float | None  # guessing accuracy; None when unknown or not applicable (lower-is-better metrics)
    best_above_chance_z: float  # max over runs of (final - chance) / stderr; NaN without chance or stderr
    verdict: str  # SIGNAL, NO_SIGNAL or UNKNOWN (nothing to measure either with)
    reason: str  # one sentence for the report

    @property
    def heineman_snr(self) -> float:
        """range / noise: Heineman et al.'s relative dispersion over relative SD, the means cancelled."""
        return _ratio(self.range, self.noise)


def _ratio(a: float, b: float) -> float:
    if not (np.isfinite(a) and np.isfinite(b)):
        return float("nan")
    if b == 0:
        return float("inf") if a > 0 else float("nan")
    return float(a / b)


def runs_in_training_order(rows: pd.DataFrame) -> list[pd.DataFrame]:
    """Each model's rows sorted into training order, by the key series.final_revisions uses
    (`harness.checkpoint.training_order`: tokens trained, then step, then name); models by name."""
    out = []
    for _, group in rows.groupby("model", sort=True):
        keys = [training_order(r, None if pd.isna(t) else int(t))
                for r, t in zip(group["revision"], group["tokens_trained"])]
        out.append(group.iloc[sorted(range(len(group)), key=keys.__getitem__)])
    return out


def checkpoint_noise(runs: list[pd.DataFrame], k: int = NOISE_CHECKPOINTS) -> tuple[float, int]:
    """(mean over runs of the SD of their last k values, how many runs had k finite ones).

    The mean of per-run SDs, not one SD over all checkpoints: pooling runs of different sizes would
    measure the distance between sizes (the signal) as noise. The mean, not the max, so one jittery
    run does not silence a task; each run's SD estimates the same checkpoint-to-checkpoint jitter.
    """
    sds = []
    for run in runs:
        tail = run["value"].to_numpy(float)[-k:]
        if tail.size == k and np.all(np.isfinite(tail)):
            sds.append(float(np.std(tail, ddof=1)))
    return (float(np.mean(sds)) if sds else float("nan")), len(sds)


def chance_z(finals: pd.DataFrame, chance: float) -> float:
    """max over runs of (final - chance) / SE, the SE being the run's stderr or, where the run has
    none, guessing's own binomial SE sqrt(c (1 - c) / n); NaN when neither is known."""
    value = finals["value"].to_numpy(float)
    se = finals["stderr"].to_numpy(float) if "stderr" in finals.columns else np.full(value.size, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        if "n" in finals.columns:
            guess_se = np.sqrt(chance * (1 - chance) / finals["n"].to_numpy(float))
            se = np.where(np.isfinite(se), se, guess_se)
        z = (value - chance) / se
    z = z[~np.isnan(z)]
    return float(z.max()) if z.size else float("nan")


def signal_noise(scores: pd.DataFrame, task: str, metric: str, filter: str, chance: float | None) -> SignalNoise:
    """Signal and noise of (task, metric, filter) in scores.parquet rows (module docstring).

    `chance` is the guessing level (harness.analysis.chance.chance_level); it is ignored for
    lower-is-better metrics, where "beats chance" does not apply.
    """
    rows = metric_rows(scores, task, metric, filter)
    runs = runs_in_training_order(rows)
    noise, with_noise = checkpoint_noise(runs)
    finals = pd.concat([run.iloc[[-1]] for run in runs]) if runs else rows.iloc[:0]
    finals = finals[np.isfinite(finals["value"].to_numpy(float))]
    values = finals["value"].to_numpy(float)
    spread = float(np.std(values, ddof=1)) if values.size >= 2 else float("nan")
    value_range = float(np.ptp(values)) if values.size else float("nan")
    stderr = finals["stderr"].to_numpy(float) if "stderr" in finals.columns else np.array([])
    stderr = stderr[np.isfinite(stderr)]
    doc_stderr = float(np.median(stderr)) if stderr.size else float("nan")
    chance = None if metric in LOWER_IS_BETTER or chance is None else float(chance)
    z = chance_z(finals, chance) if chance is not None and values.size else float("nan")
    verdict, reason = judge(spread, noise, with_noise, doc_stderr, chance, z)
    return SignalNoise(task, metric, filter, int(values.size), noise, with_noise, spread, value_range,
                       _ratio(spread, noise), doc_stderr, chance, z, verdict, reason)


def judge(spread: float, noise: float, with_noise: int, doc_stderr: float, chance: float | None,
          z: float) -> tuple[str, str]:
    """(verdict, reason). NO_SIGNAL when a test fails: the spread does not exceed the noise (the
    checkpoint noise; where no run has NOISE_CHECKPOINTS checkpoints, the documents' standard error
    stands in), or chance is known and no size beats it by more than CHANCE_Z standard errors.
    SIGNAL when every test that could be run passed; UNKNOWN when none could be run.

    >>> judge(0.004, 0.006, 4, 0.01, None, float("nan"))[0]
    'no signal'
    >>> verdict, reason = judge(0.08, float("nan"), 0, 0.01, 0.25, 9.0)
    >>> print(reason)
    signal: the spread across sizes (SD 0.08) is 8x the documents' standard error 0.01 (no run has 3 checkpoints to measure noise); the best size is 9 standard errors above chance 0.25
    """
    if np.isfinite(noise):
        yard, what = noise, f"checkpoint noise {noise:.2g} (SD over the last {NOISE_CHECKPOINTS} checkpoints of {with_noise} run(s))"
    else:
        yard, what = doc_stderr, (f"documents' standard error {doc_stderr:.2g} (no run has {NOISE_CHECKPOINTS} "
                                  "checkpoints to measure noise)")
    spread_known = np.isfinite(spread) and np.isfinite(yard)
    chance_known = chance is not None and not math.isnan(z)
    chance_text = f"chance {chance:.3g}" if chance is not None else ""
    if chance_known and z <= CHANCE_Z:
        return NO_SIGNAL, (f"no signal: no size beats {chance_text} by more than {CHANCE_Z:g} standard errors "
                           f"(best {z:.2g})")
    if spread_known and spread <= yard:
        return NO_SIGNAL, f"no signal: the spread across sizes (SD {spread:.2g}) does not exceed the {what}"
    parts = []
    if spread_known:
        parts.append(f"the spread across sizes (SD {spread:.2g}) is {_ratio(spread, yard):.2g}x the {what}")
    if chance_known:
        parts.append(f"the best size is {z:.2g} standard errors above {chance_text}")
    if not parts:
        return UNKNOWN, ("signal unknown: " + ("fewer than 2 sizes" if not np.isfinite(spread) else
                         "no checkpoints or standard errors to measure noise with, and no chance level"))
    return SIGNAL, "signal: " + "; ".join(parts)
