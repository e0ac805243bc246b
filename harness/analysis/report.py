"""report.md for `harness analyze`: the measured scores, the fits with their intervals, emergence
scores and mirage verdicts, back-test errors, the compute-optimal frontier, the skip reasons, and
the plots (linked at the end). Written atomically, like every file of a run folder.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from harness.analysis.laws import MIN_POINTS_MODEL_BOOTSTRAP
from harness.results.store import write_text_atomic


def _num(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.4g}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def write_report(run_dir: Path, scores, has_samples: bool, fits, verdicts, backtests, skipped, plots,
                 outcomes) -> Path:
    """Write RUN_DIR/report.md (atomically) and return its path."""
    path = run_dir / "report.md"
    write_text_atomic(render_report(run_dir.name, scores, has_samples, fits, verdicts, backtests, skipped, plots),
                      path)
    return path


def render_report(title: str, scores, has_samples: bool, fits, verdicts, backtests, skipped, plots) -> str:
    """The text of report.md."""
    lines = [f"# Scaling analysis: {title}", ""]
    lines += _intro(has_samples)
    lines += _scores_section(scores)
    lines += _fits_section(fits)
    lines += _emergence_section(verdicts, fits)
    lines += _backtest_section(backtests)
    lines += _chinchilla_section(fits)
    lines += ["## Skipped", ""] + ([f"- {s}" for s in skipped] or ["(nothing)"]) + [""]
    lines += ["## Plots", ""]
    lines += [f"![{p.stem}](plots/{p.name})" for p in plots] or ["(no plots: nothing was fitted)"]
    return "\n".join(lines) + "\n"


def _intro(has_samples: bool) -> list[str]:
    ci = ("95% percentile intervals from a bootstrap over documents, paired across models (the same "
          "resampled documents for every model), refitting each resample."
          if has_samples else
          "No per-document samples in the run: power-law and sigmoid fits on at least "
          f"{MIN_POINTS_MODEL_BOOTSTRAP} points get 95% percentile intervals from a bootstrap over models "
          "(the points themselves); other fits, back-tests and emergence scores have no intervals.")
    return [f"Read from `scores.parquet`{' and `samples/`' if has_samples else ''}. {ci} "
            "Sizes are non-embedding parameters; curves use each model's final checkpoint, except "
            "L(N, D), which uses every revision with a known token count.", ""]


def _scores_section(scores) -> list[str]:
    out = ["## Measured scores", ""]
    wanted = ("bits_per_byte", "nll_per_token", "acc", "exact_match", "target_loglik", "brier", "edit_distance")
    for task in sorted(scores["task"].unique()):
        sub = scores[(scores["task"] == task) & scores["metric"].isin(wanted)]
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


def _fits_section(fits) -> list[str]:
    sub = fits[~fits["law"].str.endswith(":backtest") & (fits["law"] != "emergence")]
    rows = [[r.task, r.metric + (" (−y)" if r.transform == "negate" else ""), r.law, r.param, _num(r.estimate),
             f"[{_num(r.ci_low)}, {_num(r.ci_high)}]", _num(r.r2), _num(r.rmse), str(int(r.n_sizes)), r.note or ""]
            for r in sub.itertuples()]
    laws = ("power_law: y = E + A / N^alpha; sigmoid: y = floor + (ceiling − floor) / (1 + exp(−k (log10 N − x0))), "
            "N* = 10^x0; chinchilla: L = E + A / N^alpha + B / D^beta (Approach 3). "
            "(−y): the law was fitted to −y (a log-prob becomes a loss).")
    return ["## Fits", "", laws, ""] + _table(
        ["task", "metric", "law", "param", "estimate", "95% CI", "R²", "RMSE", "sizes", "note"], rows)


def _emergence_section(verdicts, fits) -> list[str]:
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
        ["task", "metric", "emergence score [95% CI]", "N* [95% CI]", "continuous twins (score [95% CI])", "verdict"], rows)


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


def _backtest_section(backtests) -> list[str]:
    rows = []
    for b in backtests:
        inside = {None: "–", True: "yes", False: "no"}[b.inside]
        rows.append([b.task, b.metric, b.law, _num(b.held_out_n), _num(b.measured), _num(b.predicted),
                     f"[{_num(b.pi_low)}, {_num(b.pi_high)}]", f"{100 * b.rel_error:+.2f}%", inside])
    return ["## Back-test (fit all sizes but the largest, predict the largest)", ""] + _table(
        ["task", "metric", "law", "held-out N", "measured", "predicted", "95% prediction interval", "error",
         "inside?"], rows)


def _chinchilla_section(fits) -> list[str]:
    sub = fits[fits["law"] == "chinchilla"]
    if sub.empty:
        return []
    out = ["## Compute-optimal frontier", ""]
    for (task, metric), g in sub.groupby(["task", "metric"]):
        est = dict(zip(g["param"], g["estimate"]))
        out.append(f"- {task}/{metric}: N_opt ∝ C^{est['N_opt_exponent']:.3f}, D_opt ∝ C^{est['D_opt_exponent']:.3f} "
                   f"(Chinchilla's published fit gives 0.45 / 0.55); `harness compute --params N --run DIR` "
                   "evaluates it at a budget.")
    return out + [""]
