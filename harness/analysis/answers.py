"""The part of report.md that answers the user's questions first: per task, does it scale smoothly,
emerge at some N*, or carry no signal; what the chosen method predicted for the held-out largest
size against what was measured; how the methods compare; and predictions at sizes nobody measured.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.analysis.signal import NO_SIGNAL

SMOOTH_R2 = 0.9  # below it a fitted curve leaves too much unexplained to call the scaling smooth


def num(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.4g}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def _interval(low, high) -> str:
    return f"[{num(low)}, {num(high)}]" if np.isfinite(low) and np.isfinite(high) else "(no interval)"


def task_verdict(task: str, metric: str, signals, verdicts, fits: pd.DataFrame) -> str:
    """"no signal: ...", "emerges at N* = ...", "step: ...", or "scales smoothly"."""
    sig = next((s for s in signals if s.task == task and s.metric == metric), None)
    if sig is not None and sig.verdict == NO_SIGNAL:
        return f"**no signal** ({sig.reason.removeprefix('no signal: ')})"
    v = next((v for v in verdicts if v.task == task and v.discrete_metric == metric), None)
    if v is not None and v.discrete_emergent:
        nstar = fits[(fits["task"] == task) & (fits["metric"] == metric) & (fits["param"] == "N_star")]
        where = ""
        if len(nstar):
            r = nstar.iloc[0]
            where = f" at N* = {num(r.estimate)} {_interval(r.ci_low, r.ci_high)}"
        return f"**emerges**{where}: {v.verdict}"
    r2 = fits[(fits["task"] == task) & (fits["metric"] == metric) & (fits["param"].isin(["E", "x0"]))]
    if len(r2) and "a step, not a sigmoid" in (r2.iloc[0].note or ""):
        said = f"; {v.verdict}" if v is not None else ""
        return f"**a step, not a smooth curve** (the sigmoid's {r2.iloc[0].note}){said}"
    if not len(r2):
        return "**scales** (no curve fitted; see the back-test)"
    fit = r2.iloc[0]
    if not fit.r2 >= SMOOTH_R2:
        return f"**no clear trend**: the {fit.law} fit explains little (R² {num(fit.r2)})"
    return f"**scales smoothly** ({fit.law}, R² {num(fit.r2)})"


def headline_metrics(backtests: pd.DataFrame, signals) -> list[tuple[str, str]]:
    """(task, metric) pairs to answer for: every back-tested or signal-checked metric."""
    pairs = set(zip(backtests["task"], backtests["metric"])) if len(backtests) else set()
    pairs |= {(s.task, s.metric) for s in signals}
    return sorted(pairs)


def answers_section(backtests: pd.DataFrame, signals, verdicts, fits: pd.DataFrame,
                    more: list[str] = ()) -> list[str]:
    """One line per (task, metric), then `more` (the compute-optimal answers of report_frontier)."""
    out = ["## Answers", ""]
    chosen = backtests[backtests["chosen"]] if len(backtests) else backtests
    for task, metric in headline_metrics(backtests, signals):
        line = f"- **{task}** / {metric}: {task_verdict(task, metric, signals, verdicts, fits)}."
        rows = chosen[(chosen["task"] == task) & (chosen["metric"] == metric)] if len(chosen) else chosen
        for r in rows.itertuples():
            line += (f" Held-out {r.held_out_model} (N = {num(r.n_params)}): predicted {num(r.predicted)} "
                     f"{_interval(r.pi_low, r.pi_high)} by {r.method}, measured {num(r.measured)}.")
        out.append(line)
    return out + list(more) + [""]


def backtest_section(backtests: pd.DataFrame) -> list[str]:
    out = ["## Back-test: the largest size predicted from the smaller ones", ""]
    if not len(backtests):
        return out + ["(none: back-tests need >= 4 sizes of an accuracy or loss metric)", ""]
    level = float(backtests["pi_level"].iloc[0])
    chosen = backtests[backtests["chosen"]]
    inside = (chosen["pi_low"] <= chosen["measured"]) & (chosen["measured"] <= chosen["pi_high"])
    out += [f"Chosen methods (smallest forward-chaining error on the smaller sizes; the held-out size "
            f"plays no part in the choice). {100 * level:.0f}% prediction intervals include the law's own "
            f"error, measured by forward-chaining over the smaller sizes. {int(inside.sum())} of {len(chosen)} "
            f"intervals cover the measured value.", ""]
    out += table(["task", "metric", "method", "held out", "measured", "predicted", f"{100 * level:.0f}% PI",
                  "error", "inside?"], [_bt_row(r) for r in chosen.itertuples()])
    out += ["### Every method", ""]
    out += table(["task", "metric", "method", "chosen", "predicted", f"{100 * level:.0f}% PI", "error",
                  "forward-chaining MAE", "folds", "note"],
                 [[r.task, r.metric, r.method, "yes" if r.chosen else "", num(r.predicted),
                   _interval(r.pi_low, r.pi_high), num(r.error), num(r.selection_error), str(r.n_folds), r.note]
                  for r in backtests.itertuples()])
    return out


def _bt_row(r) -> list[str]:
    covered = "–" if not np.isfinite(r.pi_low) else "yes" if r.pi_low <= r.measured <= r.pi_high else "no"
    return [r.task, r.metric, r.method, f"{r.held_out_model}@{r.held_out_revision}", num(r.measured),
            num(r.predicted), _interval(r.pi_low, r.pi_high), num(r.error), covered]


def predictions_section(predictions: pd.DataFrame) -> list[str]:
    if not len(predictions):
        return []
    level = float(predictions["pi_level"].iloc[0])
    rows = [[r.task, r.metric, num(r.n_params), num(r.tokens), r.method, "yes" if r.chosen else "",
             num(r.predicted), _interval(r.pi_low, r.pi_high), r.note] for r in predictions.itertuples()]
    return ["## Predictions at sizes not measured", "",
            "Fitted on every size; the interval widens with the distance beyond the largest measured size.", ""] + table(
        ["task", "metric", "N", "tokens", "method", "chosen", "predicted", f"{100 * level:.0f}% PI", "note"], rows)


def signal_section(signals) -> list[str]:
    rows = [[s.task, s.metric, num(s.spread), num(s.noise), num(s.snr), num(s.doc_stderr),
             num(s.chance) if s.chance is not None else "–", num(s.best_above_chance_z), s.verdict]
            for s in signals]
    intro = ("Signal and noise (Heineman et al. 2025): spread = SD of the final values across sizes; noise = SD over "
             "each size's last 3 checkpoints (mean over sizes); doc. stderr = the documents' standard error; "
             "z = the best size's distance above chance in standard errors.")
    return ["## Signal and noise", "", intro, ""] + table(
        ["task", "metric", "spread", "noise", "spread/noise", "doc. stderr", "chance", "z", "verdict"], rows)
