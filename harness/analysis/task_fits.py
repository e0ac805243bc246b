"""Which laws each task of a run gets, and what fitting them found.

  rolling perplexity (a task with bits_per_byte or nll_per_token): a power law in non-embedding
      parameters per metric, and Chinchilla L(N, D) on the loss over every revision;
  few-shot (acc, acc_norm, exact_match): a power law per continuous twin (target_loglik, brier,
      edit_distance); per discrete metric its signal and noise (analysis/signal.py) and, unless
      that says "no signal", a sigmoid, its emergence score and the mirage verdict against the
      twins measured on the same models.
Back-tests and predictions are analysis/predict/'s, over the same scores. A fit that cannot be done
becomes a one-line skip reason instead of an error.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.analysis import laws
from harness.analysis.bootstrap import percentile_interval
from harness.analysis.chance import chance_level
from harness.analysis.emergence import (LOWER_IS_BETTER, MirageVerdict, emergence_statistic, emergence_statistics,
                                        mirage_verdict, oriented)
from harness.analysis.laws import FitOutcome
from harness.analysis.series import Series, build_series, metric_rows
from harness.analysis.signal import NO_SIGNAL, SignalNoise, signal_noise

ROLLING = ("bits_per_byte", "nll_per_token")
DISCRETE = ("acc", "acc_norm", "exact_match")
TWINS = ("target_loglik", "brier", "edit_distance")
MIN_SIZES_EMERGENCE = 3  # with two sizes the emergence score is always +-1: no information


@dataclass(frozen=True)
class Settings:
    """How every fit of one analysis draws its intervals."""

    n_boot: int  # resamples per fit (0: no intervals)
    seed: int
    level: float  # e.g. 0.95


@dataclass(frozen=True, eq=False)
class RunTables:
    """What the analysis reads: scores.parquet and the per-document samples (None when the run kept none)."""

    scores: pd.DataFrame
    samples: pd.DataFrame | None

    def metrics_of(self, task: str) -> set[str]:
        return set(self.scores.loc[self.scores["task"] == task, "metric"])

    def chance(self, task: str, metric: str) -> float | None:
        return chance_level(task, metric, self.samples)


@dataclass
class Findings:
    """What the analysis of one run found so far: fits, verdicts, signal and noise, emergence rows, skips."""

    outcomes: list[FitOutcome] = field(default_factory=list)
    verdicts: list[MirageVerdict] = field(default_factory=list)
    signals: list[SignalNoise] = field(default_factory=list)
    emergence_rows: list[dict] = field(default_factory=list)  # rows of fits.parquet with law "emergence"
    skipped: list[str] = field(default_factory=list)  # one line per fit not done, with the reason

    def skip(self, reason: str) -> None:
        self.skipped.append(reason)

    def attempt(self, fn, *args):
        """fn(*args), or None with its ValueError's first line recorded as a skip reason."""
        try:
            return fn(*args)
        except ValueError as exc:
            self.skip(str(exc).splitlines()[0])
            return None


def analyze_task(run: RunTables, settings: Settings, found: Findings, task: str) -> None:
    """Fit one task with the laws its metrics call for (module docstring)."""
    metrics = run.metrics_of(task)
    if metrics & set(ROLLING):
        analyze_rolling(run, settings, found, task, [m for m in ROLLING if m in metrics])
    elif metrics & set(DISCRETE):
        analyze_fewshot(run, settings, found, task, [m for m in DISCRETE if m in metrics],
                        [m for m in TWINS if m in metrics])
    else:
        found.skip(f"{task}: no metric this analysis fits (has {', '.join(sorted(metrics))})")


def analyze_rolling(run: RunTables, settings: Settings, found: Findings, task: str, metrics: list[str]) -> None:
    for metric in metrics:
        s = load_series(run, settings, found, task, metric)
        if s is not None:
            found.signals.append(signal_noise(run.scores, task, metric, s.filter, None))
        fit_law(settings, found, "power_law", s)
    fit_chinchilla(run, settings, found, task, metrics)


def fit_chinchilla(run: RunTables, settings: Settings, found: Findings, task: str, metrics: list[str]) -> None:
    """L(N, D) over every revision of nll_per_token (else the first rolling metric measured)."""
    loss_metric = "nll_per_token" if "nll_per_token" in metrics else metrics[0]
    all_revisions = load_series(run, settings, found, task, loss_metric, final_only=False)
    outcome = found.attempt(laws.chinchilla, all_revisions, settings.level, settings.n_boot, settings.seed)
    if outcome is not None:
        found.outcomes.append(outcome)


def analyze_fewshot(run: RunTables, settings: Settings, found: Findings, task: str, discrete: list[str],
                    twins: list[str]) -> None:
    twin_series = fit_twins(run, settings, found, task, twins)
    for metric in discrete:
        s = load_series(run, settings, found, task, metric)
        if s is None:
            continue
        signal = signal_noise(run.scores, task, metric, s.filter, run.chance(task, metric))
        found.signals.append(signal)
        if signal.verdict == NO_SIGNAL:
            found.skip(f"{task}/{metric}: {signal.reason}; so no sigmoid, no N*, no emergence verdict")
            continue
        fit_law(settings, found, "sigmoid", s)
        check_emergence(run, settings, found, s, twin_series)


def fit_twins(run: RunTables, settings: Settings, found: Findings, task: str, twins: list[str]) -> dict[str, Series]:
    """A power law per continuous twin; returns the twins that have values, for the mirage check."""
    twin_series = {}
    for metric in twins:
        s = load_series(run, settings, found, task, metric)
        if s is not None:
            fit_law(settings, found, "power_law", s)  # an all-NaN twin is skipped here with its reason
            if s.y.size:
                twin_series[metric] = s
    return twin_series


def load_series(run: RunTables, settings: Settings, found: Findings, task: str, metric: str,
                final_only: bool = True) -> Series | None:
    """The series of (task, metric); the points it had to leave out become a skip line."""
    s = build_series(run.scores, run.samples, task, metric, final_only=final_only,
                     n_boot=settings.n_boot, seed=settings.seed)
    if s is not None and s.dropped:
        found.skip(f"{task}/{metric}: left out {', '.join(s.dropped)} (NaN value or size)")
    return s


def fit_law(settings: Settings, found: Findings, law: str, s: Series | None) -> FitOutcome | None:
    """Fit `law` ("power_law" or "sigmoid") to s; a fit that cannot be made becomes a skip line."""
    if s is None:
        return None
    outcome = found.attempt(getattr(laws, law), s, settings.level, settings.n_boot, settings.seed)
    if outcome is not None:
        found.outcomes.append(outcome)
    return outcome


def check_emergence(run: RunTables, settings: Settings, found: Findings, s: Series,
                    twin_series: dict[str, Series]) -> None:
    """Emergence score and mirage verdict of a discrete metric's curve against its comparable twins."""
    if s.n_sizes < MIN_SIZES_EMERGENCE:
        found.skip(f"{s.task}/{s.metric}: {s.n_sizes} distinct size(s), needs >= {MIN_SIZES_EMERGENCE} for the "
                   "emergence score and mirage check")
        return
    same = comparable_twins(s, twin_series)
    noise = {x.metric: doc_noise(run, x) for x in (s, *same.values())}
    verdict = mirage_verdict(s.task, s.n, s.metric, s.y, {m: t.y for m, t in same.items()},
                             noise=noise[s.metric], twin_noise={m: noise[m] for m in same})
    found.verdicts.append(verdict)
    found.emergence_rows += [emergence_row(x, verdict, settings.level, noise[x.metric]) for x in (s, *same.values())]


def doc_noise(run: RunTables, s: Series) -> float | None:
    """The median documents' standard error of the series' points (scores.parquet `stderr`), None when
    absent: the emergence score's noise floor (emergence.noise_floor)."""
    rows = metric_rows(run.scores, s.task, s.metric, s.filter)
    keys = set(zip(s.models, s.revisions))
    picked = rows[[k in keys for k in zip(rows["model"], rows["revision"])]]
    se = pd.to_numeric(picked["stderr"], errors="coerce").to_numpy(float) if "stderr" in picked else np.array([])
    se = se[np.isfinite(se) & (se > 0)]
    return float(np.median(se)) if se.size else None


def comparable_twins(s: Series, twin_series: dict[str, Series]) -> dict[str, Series]:
    """The twins measured on exactly the same (model, revision) points as s; the others are left out."""
    return {m: t for m, t in twin_series.items() if t.models == s.models and t.revisions == s.revisions}


def emergence_row(s: Series, verdict: MirageVerdict, level: float, noise: float | None = None) -> dict:
    """The fits.parquet row of one curve's emergence score, with its interval over the same resamples."""
    lo = hi = np.nan
    ok = 0
    if s.boot is not None:
        draws = emergence_statistics(s.n, oriented(s.metric, s.boot), noise)
        lo, hi = percentile_interval(draws, level)
        ok = int(np.isfinite(draws).sum())
    return {"task": s.task, "metric": s.metric, "filter": s.filter, "law": "emergence", "param": "score",
            "estimate": emergence_statistic(s.n, oriented(s.metric, s.y), noise), "ci_low": lo, "ci_high": hi,
            "ci_level": level, "ci_method": s.ci_method, "n_boot_ok": ok, "n_sizes": s.n_sizes,
            "transform": "negate" if s.metric in LOWER_IS_BETTER else "identity",
            "note": verdict.verdict if s.metric == verdict.discrete_metric else f"twin of {verdict.discrete_metric}",
            "n_points": int(s.y.size)}
