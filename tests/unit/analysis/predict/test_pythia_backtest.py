"""The back-test on a real ladder: the Pythia suite's published zero-shot results (examples/pythia-evals,
EleutherAI/pythia, Apache-2.0), imported with `harness import` and predicted from the six smaller sizes.

The bar (issue 12): with the chosen methods, 12B's accuracy on lambada_openai, piqa, arc_easy, sciq,
winogrande (acc) and arc_challenge (acc_norm) is predicted with a mean absolute error <= 2 points, the
90% intervals cover >= 5 of the 6, and 12B's lambada_openai perplexity is within 10%.
"""
from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.analyze import load_scores
from harness.analysis.chance import chance_level
from harness.analysis.predict.run import predict_run
from harness.config import REPO_ROOT
from harness.ingest.importer import import_sources

HEADLINE = [("lambada_openai", "acc"), ("piqa", "acc"), ("arc_easy", "acc"), ("sciq", "acc"),
            ("winogrande", "acc"), ("arc_challenge", "acc_norm")]


@pytest.fixture(scope="module")
def backtests(tmp_path_factory):
    run = tmp_path_factory.mktemp("pythia") / "run"
    import_sources([REPO_ROOT / "examples" / "pythia-evals"], run, None, log=lambda *_: None)
    scores = load_scores(run)
    back, _ = predict_run(scores, lambda task, metric: chance_level(task, metric, None), level=0.9)
    return back


def test_held_out_is_the_12b_final_checkpoint_and_choice_is_one_per_metric(backtests):
    assert set(backtests["held_out_model"]) == {"EleutherAI/pythia-v1.1-12b"}
    assert set(backtests["held_out_revision"]) == {"step143000"}
    assert (backtests.groupby(["task", "metric"])["chosen"].sum() == 1).all()


def test_chosen_methods_meet_the_accuracy_bar(backtests):
    chosen = backtests[backtests["chosen"]].set_index(["task", "metric"]).loc[HEADLINE]
    errors = 100 * chosen["abs_error"]
    inside = (chosen["pi_low"] <= chosen["measured"]) & (chosen["measured"] <= chosen["pi_high"])
    print(chosen[["method", "measured", "predicted", "pi_low", "pi_high"]].round(4).to_string())
    assert errors.mean() <= 2.0, f"mean absolute error {errors.mean():.2f} points"
    assert inside.sum() >= 5, f"90% intervals cover {int(inside.sum())} of 6"


def test_lambada_perplexity_within_ten_percent(backtests):
    row = backtests[(backtests.task == "lambada_openai") & (backtests.metric == "ppl") & backtests.chosen].iloc[0]
    assert abs(row.predicted / row.measured - 1) <= 0.10
    assert row.pi_low < row.predicted < row.pi_high


def test_intervals_are_useful_not_just_wide(backtests):
    chosen = backtests[backtests["chosen"]].set_index(["task", "metric"]).loc[HEADLINE]
    widths = 100 * (chosen["pi_high"] - chosen["pi_low"])
    assert np.median(widths) < 10.0, f"median 90% interval width {np.median(widths):.1f} points"
