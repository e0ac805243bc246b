"""Predictions for a whole run: the back-test of the largest size for every (task, metric) a
predictor handles, and predictions at the sizes the user asked for (`harness analyze --predict`)."""
from __future__ import annotations

from typing import Callable

import pandas as pd

from harness.analysis.predict.forecast import BACKTEST_COLUMNS, PREDICTION_COLUMNS, backtest_ladder, predict_targets
from harness.analysis.predict.points import kind_of, ladder_for

ChanceOf = Callable[[str, str], "float | None"]


def predictable_metrics(scores: pd.DataFrame, task: str) -> list[str]:
    return sorted(m for m in scores.loc[scores["task"] == task, "metric"].unique() if kind_of(m) is not None)


def predict_run(scores: pd.DataFrame, chance_of: ChanceOf, targets: list[tuple[float, float]] = (),
                level: float = 0.9) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(backtest rows, prediction rows) as DataFrames with BACKTEST_COLUMNS / PREDICTION_COLUMNS."""
    back, ahead = [], []
    for task in sorted(scores["task"].unique()):
        for metric in predictable_metrics(scores, task):
            ladder = ladder_for(scores, task, metric, chance_of(task, metric))
            if ladder is None:
                continue
            back += backtest_ladder(ladder, level)
            if targets:
                ahead += predict_targets(ladder, list(targets), level)
    return (pd.DataFrame(back, columns=list(BACKTEST_COLUMNS)), pd.DataFrame(ahead, columns=list(PREDICTION_COLUMNS)))


def parse_target(text: str) -> tuple[float, float]:
    """"30e9" -> (3e10, NaN); "30e9:600e9" -> (3e10, 6e11): non-embedding parameters[:tokens].

    >>> parse_target("30e9:600e9")
    (30000000000.0, 600000000000.0)

    Raises ValueError naming the bad part.
    """
    n_text, _, d_text = text.partition(":")
    try:
        n = float(n_text)
        d = float(d_text) if d_text else float("nan")
    except ValueError:
        raise ValueError(f"--predict {text!r}: expected N or N:D as numbers, e.g. 30e9 or 30e9:600e9") from None
    if not n > 0 or (d_text and not d > 0):
        raise ValueError(f"--predict {text!r}: N and D must be > 0")
    return n, d
