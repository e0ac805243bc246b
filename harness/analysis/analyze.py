"""`harness analyze RUN_DIR`: scaling fits, emergence and back-tests from a run's Parquet files.

Reads only scores.parquet and samples/**/*.parquet; writes fits.parquet (one row per fitted
parameter, with bootstrap interval and goodness of fit), bands.parquet (the fitted curves and their
pointwise bands, which the plots draw), backtest.parquet (every method's prediction of the largest
size from the smaller ones, with its prediction interval; analysis/predict/), predictions.parquet
(with --predict), plots/*.png and report.md, each replaced atomically. Which law per task:
  rolling perplexity (bits_per_byte, nll_per_token): power law in non-embedding parameters, and
      Chinchilla L(N, D) when >= 3 sizes have >= 2 revisions with known tokens_trained, with its
      residual checks, its frontier when reliable, and Approach 2's when its points are separate
      runs (analysis.frontier);
  few-shot (acc, exact_match): sigmoid for the discrete metric, power law for its continuous twins
      (target_loglik, brier, edit_distance), emergence scores and the mirage verdict.
Every accuracy and loss metric on >= 4 sizes is back-tested by every method that applies.
Anything that cannot be fitted is skipped with a one-line reason (report + summary.skipped).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.analysis.predict.run import predict_run
from harness.analysis.tables import FIT_COLUMNS, bands_table, fits_table, write_table
from harness.analysis.task_fits import DISCRETE, ROLLING, TWINS, Findings, RunTables, Settings, analyze_task
from harness.errors import UserError

__all__ = ["DISCRETE", "FIT_COLUMNS", "ROLLING", "SCORE_COLUMNS", "TWINS", "AnalysisSummary", "analyze_run",
           "load_samples", "load_scores"]

SCORE_COLUMNS = ("model", "revision", "task", "metric", "filter", "value", "n_params_nonembedding", "tokens_trained")


@dataclass(frozen=True)
class AnalysisSummary:
    """What analyze_run wrote and found."""

    run_dir: Path
    fits_path: Path
    bands_path: Path
    report_path: Path
    plots: tuple[Path, ...]
    skipped: tuple[str, ...]  # one line per fit not done, with the reason
    verdicts: tuple  # emergence.MirageVerdict per few-shot task and discrete metric
    backtests: object  # DataFrame, predict.BACKTEST_COLUMNS: every method's back-test of the largest size
    predictions: object  # DataFrame, predict.PREDICTION_COLUMNS: every method at each --predict target
    signals: tuple  # signal.SignalNoise per fitted metric
    n_fits: int  # law fits done (power_law, sigmoid, chinchilla)


def load_scores(run_dir: Path):
    """RUN_DIR/scores.parquet with a string revision ("" when none), filter ("none" when missing),
    float value, size and token columns (NaN where unknown) and an object finished_schedule column
    (True, False, or None where unknown or the file is from a harness that did not write it)."""
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
    flags = scores["finished_schedule"].tolist() if "finished_schedule" in scores.columns else [None] * len(scores)
    scores["finished_schedule"] = pd.Series([f if isinstance(f, bool) else None for f in flags], index=scores.index,
                                            dtype=object)
    return scores


def load_samples(run_dir: Path):
    """All per-document rows, or None when the run kept none."""
    import pandas as pd

    from harness.results.store import parquet_files

    files = parquet_files(run_dir / "samples")  # never a `.tmp-*` leftover of a killed writer
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


def analyze_run(run_dir: Path, *, n_boot: int = 200, seed: int = 0, level: float = 0.95,
                targets: tuple[tuple[float, float], ...] = (), pi_level: float = 0.9) -> AnalysisSummary:
    """Fit every task of the run; write fits.parquet, bands.parquet, backtest.parquet, plots/ and
    report.md, and predictions.parquet for `targets` ((non-embedding parameters, tokens or NaN) pairs).

    Raises:
        UserError: RUN_DIR has no readable scores.parquet, or it lacks a required column.
    """
    run_dir = Path(run_dir)
    run = RunTables(load_scores(run_dir), load_samples(run_dir))
    settings = Settings(n_boot, seed, level)
    found = Findings()
    if run.scores.empty:
        found.skip(f"{run_dir / 'scores.parquet'} has no rows: nothing to fit")
    for task in sorted(run.scores["task"].unique()):
        analyze_task(run, settings, found, task)
    backtests, predictions = predict_run(run.scores, run.chance, list(targets), pi_level)
    return write_outputs(run_dir, run, settings, found, backtests, predictions)


def write_outputs(run_dir: Path, run: RunTables, settings: Settings, found: Findings, backtests,
                  predictions) -> AnalysisSummary:
    """Write the tables, the plots and the report of what the analysis found."""
    from harness.analysis import plot, report

    fits = fits_table(found.outcomes, found.emergence_rows, settings.level)
    fits_path = write_table(fits, run_dir / "fits.parquet")
    bands_path = write_table(bands_table(found.outcomes), run_dir / "bands.parquet")
    write_table(backtests, run_dir / "backtest.parquet")
    if len(predictions):
        write_table(predictions, run_dir / "predictions.parquet")
    plots = plot.make_all(run_dir / "plots", found.outcomes, found.verdicts, backtests)
    report_path = report.write_report(run_dir, report.ReportInputs(
        run.scores, run.samples is not None, fits, tuple(found.verdicts), backtests, predictions,
        tuple(found.signals), tuple(found.skipped), tuple(plots)))
    return AnalysisSummary(run_dir, fits_path, bands_path, report_path, tuple(plots), tuple(found.skipped),
                           tuple(found.verdicts), backtests, predictions, tuple(found.signals), len(found.outcomes))
