"""Predicting sizes nobody measured, with intervals that include the error of the law.

    points.py     a (task, metric) over a ladder: each model's final checkpoint, the task's loss,
                  and (loss, metric) pairs over every checkpoint; what each metric's scale is
    methods.py    the laws that extrapolate: sigmoid in log N, two-step (N -> task loss -> metric),
                  power law of -log(accuracy) in compute 6ND, and power laws of losses
    intervals.py  forward-chaining (rolling-origin) errors on the smaller sizes and a parametric
                  bootstrap, combined into a prediction interval
    forecast.py   every method's prediction at a target size, one marked chosen (by its rolling-origin
                  error, never by the target), and the back-test of the largest size
"""
from harness.analysis.predict.forecast import (BACKTEST_COLUMNS, PREDICTION_COLUMNS, Prediction, backtest_ladder,
                                               forecast, predict_targets)
from harness.analysis.predict.points import Ladder, ladder_for

__all__ = ["BACKTEST_COLUMNS", "PREDICTION_COLUMNS", "Ladder", "Prediction", "backtest_ladder", "forecast",
           "ladder_for", "predict_targets"]
