"""The report's first section: one verdict per task and metric, from real analysis outputs' shapes."""
from __future__ import annotations

import pandas as pd

from harness.analysis.answers import answers_section, backtest_section, task_verdict
from harness.analysis.emergence import mirage_verdict
from harness.analysis.signal import NO_SIGNAL, SIGNAL, SignalNoise


def signal(verdict, reason="why"):
    return SignalNoise("t", "acc", "none", 5, float("nan"), 0, 0.1, 0.2, float("nan"), 0.01, 0.25, 9.0,
                       verdict, reason)


def fit_row(param, r2, note=""):
    return {"task": "t", "metric": "acc", "law": "sigmoid", "param": param, "estimate": 1e9, "ci_low": 5e8,
            "ci_high": 2e9, "r2": r2, "note": note}


def test_no_signal_wins_over_everything():
    fits = pd.DataFrame([fit_row("x0", 0.99)])
    text = task_verdict("t", "acc", [signal(NO_SIGNAL, "no signal: at chance")], [], fits)
    assert text.startswith("**no signal**") and "at chance" in text


def test_smooth_unclear_step_and_emergent():
    sizes = [1e7, 1e8, 1e9, 1e10, 1e11]
    assert "scales smoothly" in task_verdict("t", "acc", [signal(SIGNAL)], [], pd.DataFrame([fit_row("x0", 0.99)]))
    assert "no clear trend" in task_verdict("t", "acc", [signal(SIGNAL)], [], pd.DataFrame([fit_row("x0", 0.3)]))
    step = pd.DataFrame([fit_row("x0", 1.0, "k at its bound 50 (a step, not a sigmoid)")])
    assert "a step, not a smooth curve" in task_verdict("t", "acc", [], [], step)
    jump = mirage_verdict("t", sizes, "acc", [0.25, 0.25, 0.25, 0.25, 0.9], {}, noise=0.01)
    both = pd.DataFrame([fit_row("x0", 0.99), fit_row("N_star", 0.99)])
    assert task_verdict("t", "acc", [signal(SIGNAL)], [jump], both).startswith("**emerges** at N* = 1e+09")


def test_answers_lead_with_the_chosen_prediction():
    bt = pd.DataFrame([{"task": "t", "metric": "acc", "method": "sigmoid", "chosen": True, "held_out_model": "big",
                        "held_out_revision": "main", "n_params": 1e10, "tokens": 1e11, "measured": 0.7,
                        "predicted": 0.68, "pi_low": 0.65, "pi_high": 0.71, "error": -0.02, "abs_error": 0.02,
                        "pi_level": 0.9, "selection_error": 0.01, "n_folds": 2, "note": ""}])
    lines = "\n".join(answers_section(bt, [signal(SIGNAL)], [], pd.DataFrame([fit_row("x0", 0.99)])))
    assert "predicted 0.68 [0.65, 0.71] by sigmoid, measured 0.7" in lines
    assert "1 of 1 intervals cover" in "\n".join(backtest_section(bt))
