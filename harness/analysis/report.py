"""report.md for `harness analyze`: the measured scores, the fits with their intervals, emergence
scores and mirage verdicts, back-test errors, the compute-optimal frontier, the skip reasons, and
the plots (linked at the end). Written atomically, like every file of a run folder.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dataclasses import dataclass

import pandas as pd

from harness.analysis import answers
from harness.analysis.answers import num as _num
from harness.analysis.answers import table as _table
from harness.analysis.frontier import DERIVED_LAWS
from harness.analysis.laws import MIN_POINTS_MODEL_BOOTSTRAP
from harness.analysis.report_frontier import compute_optimal_answers, frontier_section
from harness.analysis.series import final_revisions
from harness.results.store import write_text_atomic


@dataclass(frozen=True, eq=False)
class ReportInputs:
    """Everything report.md is written from."""

    scores: pd.DataFrame
    has_samples: bool
    fits: pd.DataFrame
    verdicts: tuple
    backtests: pd.DataFrame
    predictions: pd.DataFrame
    signals: tuple
    skipped: tuple[str, ...]
    plots: tuple[Path, ...]


def write_report(run_dir: Path, inputs: ReportInputs) -> Path:
    """Write RUN_DIR/report.md (atomically) and return its path."""
    path = run_dir / "report.md"
    write_text_atomic(render_report(run_dir.name, inputs), path)
    return path


def render_report(title: str, r: ReportInputs) -> str:
    """The text of report.md: the answers first, then the evidence."""
    level = float(r.fits["ci_level"].iloc[0]) if len(r.fits) else 0.95
    lines = [f"# Scaling analysis: {title}", ""]
    lines += answers.answers_section(r.backtests, r.signals, r.verdicts, r.fits, compute_optimal_answers(r.fits))
    lines += answers.backtest_section(r.backtests)
    lines += answers.predictions_section(r.predictions)
    lines += answers.signal_section(r.signals)
    lines += _intro(r.has_samples, level)
    lines += _scores_section(r.scores)
    lines += _fits_section(r.fits, level)
    lines += _emergence_section(r.verdicts, r.fits, level)
    lines += frontier_section(r.fits)
    lines += ["## Skipped", ""] + ([f"- {s}" for s in r.skipped] or ["(nothing)"]) + [""]
    lines += ["## Plots", ""]
    lines += [f"![{p.stem}](plots/{p.name})" for p in r.plots] or ["(no plots: nothing was fitted)"]
    return "\n".join(lines) + "\n"


def _intro(has_samples: bool, level: float) -> list[str]:
    pct = f"{100 * level:.0f}%"
    ci = (f"{pct} percentile intervals from a bootstrap over documents, paired across models (the same "
          "resampled documents for every model), refitting each resample."
          if has_samples else
          "No per-document samples in the run: power-law, sigmoid and L(N, D) fits on at least "
          f"{MIN_POINTS_MODEL_BOOTSTRAP} points get {pct} percentile intervals from a bootstrap over models "
          "(the points themselves); emergence scores have no intervals.")
    return ["## How the fits below were made", "", f"Read from `scores.parquet`{' and `samples/`' if has_samples else ''}. {ci} "
            "Sizes are non-embedding parameters; curves compare the models at the largest token count they "
            "all have a checkpoint at (else each model's final checkpoint), except L(N, D), which uses every "
            "revision with a known token count.", ""]


def _scores_section(scores) -> list[str]:
    out = ["## Measured scores (one checkpoint per model, as the curves use; every checkpoint is in scores.parquet)",
           ""]
    wanted = ("bits_per_byte", "nll_per_token", "acc", "acc_norm", "exact_match", "target_loglik", "brier",
              "edit_distance", "ppl", "perplexity")
    for task in sorted(scores["task"].unique()):
        rows = scores[scores["task"] == task]  # per task, as the curves pick (a task may run on fewer revisions)
        finals = final_revisions(rows.drop_duplicates(["model", "revision"])).set_index(["model", "revision"]).index
        rows = rows[pd.MultiIndex.from_frame(rows[["model", "revision"]]).isin(finals)]
        sub = rows[rows["metric"].isin(wanted)]
        if sub.empty:
            continue
        sub = sub.assign(col=sub["metric"] + np.where(sub["filter"] == "none", "", " (" + sub["filter"] + ")"))
        keys = ["n_params_nonembedding", "model", "tokens_trained", "revision"]
        table = (sub.drop_duplicates(keys + ["col"]).set_index(keys + ["col"])["value"].unstack("col")
                 .sort_index(na_position="first"))
        rows = [[m, r or "–", _num(n), _num(d)] + [_num(v) for v in table.loc[(n, m, d, r)]]
                for n, m, d, r in table.index]
        out += [f"### {task}", ""] + _table(["model", "revision", "N (non-emb.)", "tokens"] + list(table.columns), rows)
    return out


def _fits_section(fits, level: float) -> list[str]:
    sub = fits[~fits["law"].isin(("emergence", *DERIVED_LAWS))]  # the derived rows have their own section
    rows = [[r.task, r.metric + (" (−y)" if r.transform == "negate" else ""), r.law, r.param, _num(r.estimate),
             f"[{_num(r.ci_low)}, {_num(r.ci_high)}]", _num(r.r2), _num(r.rmse), str(int(r.n_sizes)), r.note or ""]
            for r in sub.itertuples()]
    laws = ("power_law: y = E + A / N^alpha; sigmoid: y = floor + (ceiling − floor) / (1 + exp(−k (log10 N − x0))), "
            "N* = 10^x0; chinchilla: L = E + A / N^alpha + B / D^beta (Approach 3). "
            "(−y): the law was fitted to −y (a log-prob becomes a loss).")
    return ["## Fits", "", laws, ""] + _table(
        ["task", "metric", "law", "param", "estimate", f"{100 * level:.0f}% CI", "R²", "RMSE", "sizes", "note"], rows)


def _emergence_section(verdicts, fits, level: float) -> list[str]:
    rows = []
    for v in verdicts:
        twins = ", ".join(f"{m} {_score_text(fits, v.task, m, s)}" for m, s in v.twin_statistics.items()) or "–"
        rows.append([v.task, v.discrete_metric, _score_text(fits, v.task, v.discrete_metric, v.discrete_statistic),
                     _threshold_text(fits, v.task, v.discrete_metric), twins, v.verdict])
    intro = ("Emergence score (Schaeffer et al. 2023): sign(argmax − argmin)·(max − min)/sqrt(median of squared "
             "steps), on values oriented so higher is better. A steady climb scores about (sizes − 1); a curve "
             "counts as a jump at twice that. Mirage: a jump under the discrete metric that its continuous twin "
             "does not show.")
    return ["## Emergence and the mirage check", "", intro, ""] + _table(
        ["task", "metric", f"emergence score [{100 * level:.0f}% CI]", f"N* [{100 * level:.0f}% CI]",
         f"continuous twins (score [{100 * level:.0f}% CI])", "verdict"], rows)


def _threshold_text(fits, task: str, metric: str) -> str:
    """N* of the sigmoid fit with its interval, "–" when the sigmoid was not fitted."""
    nstar = fits[(fits["task"] == task) & (fits["metric"] == metric) & (fits["law"] == "sigmoid")
                 & (fits["param"] == "N_star")]
    if not len(nstar):
        return "–"
    r = nstar.iloc[0]
    text = f"{_num(r.estimate)} [{_num(r.ci_low)}, {_num(r.ci_high)}]"
    if "outside" in (r.note or ""):
        text += " (outside measured range)"
    return text


def _score_text(fits, task: str, metric: str, value: float) -> str:
    """An emergence score, with its interval from fits.parquet when it has one."""
    r = fits[(fits["task"] == task) & (fits["metric"] == metric) & (fits["law"] == "emergence")]
    ci = f" [{_num(r.iloc[0].ci_low)}, {_num(r.iloc[0].ci_high)}]" if len(r) and np.isfinite(r.iloc[0].ci_low) else ""
    return f"{value:.3g}{ci}"
