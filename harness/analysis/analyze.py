"""`harness analyze RUN_DIR`: scaling fits, emergence and back-tests from a run's Parquet files.

Reads only scores.parquet and samples/**/*.parquet (the results contract in DESIGN.md); writes
fits.parquet (one row per fitted parameter, with bootstrap interval and goodness of fit),
bands.parquet (the fitted curves and their pointwise bands, which the plots draw), plots/*.png and
report.md. Which law per task:
  rolling perplexity (bits_per_byte, nll_per_token): power law in non-embedding parameters, and
      Chinchilla L(N, D) when >= 3 sizes have >= 2 revisions with known tokens_trained;
  few-shot (acc, exact_match): sigmoid for the discrete metric, power law for its continuous twins
      (target_loglik, brier, edit_distance), emergence scores and the mirage verdict.
Anything that cannot be fitted is skipped with a one-line reason (report + summary.skipped).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import UserError

ROLLING = ("bits_per_byte", "nll_per_token")
DISCRETE = ("acc", "exact_match")
TWINS = ("target_loglik", "brier", "edit_distance")
SCORE_COLUMNS = ("model", "revision", "task", "metric", "filter", "value", "n_params_nonembedding", "tokens_trained")
FIT_COLUMNS = ("task", "metric", "filter", "law", "param", "estimate", "ci_low", "ci_high", "ci_level", "ci_method",
               "n_boot_ok", "n_sizes", "transform", "note", "n_points", "dof", "rss", "rmse", "r2")


@dataclass(frozen=True)
class AnalysisSummary:
    run_dir: Path
    fits_path: Path
    bands_path: Path
    report_path: Path
    plots: tuple[Path, ...]
    skipped: tuple[str, ...]  # one line per fit not done, with the reason
    verdicts: tuple  # emergence.MirageVerdict per few-shot task and discrete metric
    backtests: tuple  # backtest.Backtest per fitted curve with >= 4 sizes
    n_fits: int


def load_scores(run_dir: Path):
    import pandas as pd

    path = run_dir / "scores.parquet"
    if not path.is_file():
        raise UserError(f"{path} not found: RUN_DIR must be a folder written by `harness run`")
    scores = pd.read_parquet(path)
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise UserError(f"{path} lacks column(s) {', '.join(missing)}; is it from an older harness?")
    scores = scores.copy()
    scores["revision"] = scores["revision"].fillna("").astype(str)
    scores["filter"] = scores["filter"].fillna("none").astype(str)
    for col in ("value", "n_params_nonembedding", "tokens_trained"):
        scores[col] = pd.to_numeric(scores[col], errors="coerce").astype(float)
    return scores


def load_samples(run_dir: Path):
    """All per-document rows, or None when the run kept none."""
    import pandas as pd

    files = sorted((run_dir / "samples").glob("**/*.parquet"))
    frames = [pd.read_parquet(f) for f in files]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return None
    samples = pd.concat(frames, ignore_index=True)
    if "revision" in samples.columns:
        samples["revision"] = samples["revision"].fillna("").astype(str)
    else:
        samples["revision"] = ""
    return samples


def analyze_run(run_dir: Path, *, n_boot: int = 200, seed: int = 0, level: float = 0.95) -> AnalysisSummary:
    """Fit every task of the run; write fits.parquet, bands.parquet, plots/ and report.md.

    Raises:
        UserError: RUN_DIR has no readable scores.parquet.
    """
    import pandas as pd

    from harness.analysis import plot, report

    run_dir = Path(run_dir)
    scores = load_scores(run_dir)
    samples = load_samples(run_dir)
    work = _Work(scores, samples, n_boot, seed, level)
    if scores.empty:
        work.skipped.append(f"{run_dir / 'scores.parquet'} has no rows: nothing to fit")
    for task in sorted(scores["task"].unique()):
        metrics = set(scores.loc[scores["task"] == task, "metric"])
        if metrics & set(ROLLING):
            work.rolling(task, [m for m in ROLLING if m in metrics])
        elif metrics & set(DISCRETE):
            work.fewshot(task, [m for m in DISCRETE if m in metrics], [m for m in TWINS if m in metrics])
        else:
            work.skipped.append(f"{task}: no metric this analysis fits (has {', '.join(sorted(metrics))})")
    rows = [r for o in work.outcomes for r in o.rows(level)]
    rows += [r for b in work.backtests for r in _backtest_rows(b, level)]
    rows += work.emergence_rows
    fits = pd.DataFrame(rows, columns=list(FIT_COLUMNS))
    fits_path = run_dir / "fits.parquet"
    fits.to_parquet(fits_path, index=False)
    bands = [o.band.assign(task=o.series.task, metric=o.series.metric, law=o.law) for o in work.outcomes
             if o.band is not None]
    bands_path = run_dir / "bands.parquet"
    (pd.concat(bands, ignore_index=True) if bands else
     pd.DataFrame(columns=["n", "estimate", "low", "high", "task", "metric", "law"])).to_parquet(bands_path, index=False)
    plots = plot.make_all(run_dir / "plots", work.outcomes, work.verdicts, work.backtests)
    report_path = report.write_report(run_dir, scores, samples is not None, fits, work.verdicts, work.backtests,
                                      work.skipped, plots, work.outcomes)
    return AnalysisSummary(run_dir, fits_path, bands_path, report_path, tuple(plots), tuple(work.skipped),
                           tuple(work.verdicts), tuple(work.backtests), len(work.outcomes))


def _backtest_rows(b, level: float) -> list[dict]:
    base = {"task": b.task, "metric": b.metric, "filter": "", "law": f"{b.law}:backtest", "ci_level": level,
            "ci_method": "paired document bootstrap (prediction interval)", "transform": "identity",
            "note": f"fit below {b.held_out_n:.3g}, predict {b.held_out_n:.3g}"}
    inside = np.nan if b.inside is None else float(b.inside)
    values = {"predicted": (b.predicted, b.pi_low, b.pi_high), "measured": (b.measured, np.nan, np.nan),
              "error": (b.error, np.nan, np.nan), "rel_error": (b.rel_error, np.nan, np.nan),
              "inside_interval": (inside, np.nan, np.nan)}
    return [{**base, "param": k, "estimate": v, "ci_low": lo, "ci_high": hi} for k, (v, lo, hi) in values.items()]


class _Work:
    """Accumulates fits, verdicts, back-tests and skip reasons over the tasks of one run."""

    def __init__(self, scores, samples, n_boot: int, seed: int, level: float):
        self.scores, self.samples, self.n_boot, self.seed, self.level = scores, samples, n_boot, seed, level
        self.outcomes, self.verdicts, self.backtests, self.skipped = [], [], [], []
        self.emergence_rows: list[dict] = []

    def series(self, task: str, metric: str, final_only: bool = True):
        from harness.analysis.series import build_series

        s = build_series(self.scores, self.samples, task, metric, final_only=final_only,
                         n_boot=self.n_boot, seed=self.seed)
        if s is not None and s.dropped:
            self.skipped.append(f"{task}/{metric}: left out {', '.join(s.dropped)} (NaN value or size)")
        return s

    def attempt(self, fn, *args):
        """Run a fit; a ValueError becomes a skip line instead of a crash."""
        try:
            return fn(*args)
        except ValueError as exc:
            self.skipped.append(str(exc).splitlines()[0])
            return None

    def fit_with_backtest(self, law: str, s):
        from harness.analysis import laws as analyze_fits, backtest

        outcome = self.attempt(getattr(analyze_fits, law), s, self.level, self.n_boot, self.seed)
        if outcome is not None:
            self.outcomes.append(outcome)
            bt = self.attempt(backtest.backtest, s, law, self.level)
            if bt is not None:
                self.backtests.append(bt)
        return outcome

    def rolling(self, task: str, metrics: list[str]) -> None:
        from harness.analysis import laws as analyze_fits

        for metric in metrics:
            self.fit_with_backtest("power_law", self.series(task, metric))
        loss_metric = "nll_per_token" if "nll_per_token" in metrics else metrics[0]
        all_revisions = self.series(task, loss_metric, final_only=False)
        outcome = self.attempt(analyze_fits.chinchilla, all_revisions, self.level, self.n_boot, self.seed)
        if outcome is not None:
            self.outcomes.append(outcome)

    def fewshot(self, task: str, discrete: list[str], twins: list[str]) -> None:
        from harness.analysis.emergence import mirage_verdict

        twin_series = {}
        for metric in twins:
            s = self.series(task, metric)
            if s is not None:
                self.fit_with_backtest("power_law", s)  # an all-NaN twin is skipped here with its reason
                if s.y.size:
                    twin_series[metric] = s
        for metric in discrete:
            s = self.series(task, metric)
            self.fit_with_backtest("sigmoid", s)
            if s.n_sizes < 3:  # with two sizes the score is always +-1: no information
                self.skipped.append(f"{task}/{metric}: {s.n_sizes} distinct size(s), needs >= 3 for the "
                                    "emergence score and mirage check")
                continue
            # Twins must be compared on the same models: keep the points both series have.
            same = {m: t for m, t in twin_series.items() if t.models == s.models and t.revisions == s.revisions}
            verdict = mirage_verdict(task, s.n, metric, s.y, {m: t.y for m, t in same.items()})
            self.verdicts.append(verdict)
            self.emergence_rows += [self.emergence_row(x, verdict) for x in (s, *same.values())]

    def emergence_row(self, s, verdict) -> dict:
        """The emergence score of one curve, with its interval over the same document resamples."""
        from harness.analysis.bootstrap import percentile_interval
        from harness.analysis.emergence import emergence_score, emergence_scores, oriented

        lo = hi = np.nan
        ok = 0
        if s.boot is not None:
            draws = emergence_scores(s.n, oriented(s.metric, s.boot))
            lo, hi = percentile_interval(draws, self.level)
            ok = int(np.isfinite(draws).sum())
        return {"task": s.task, "metric": s.metric, "filter": s.filter, "law": "emergence", "param": "score",
                "estimate": emergence_score(s.n, oriented(s.metric, s.y)), "ci_low": lo, "ci_high": hi,
                "ci_level": self.level, "ci_method": s.ci_method, "n_boot_ok": ok, "n_sizes": s.n_sizes,
                "transform": "negate" if s.metric in ("brier", "edit_distance") else "identity",
                "note": verdict.verdict if s.metric == verdict.discrete_metric else f"twin of {verdict.discrete_metric}",
                "n_points": int(s.y.size)}
