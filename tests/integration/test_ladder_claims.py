"""The claims of issue 7 about the committed ladder (zoo/), from its lm-eval evaluation (zoo/eval.json,
made by `python -m harness.zoo.eval`), plus a live lm-eval re-check that eval.json belongs to the
committed checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ZOO = REPO / "zoo"
EVAL = ZOO / "eval.json"
JUMP_TASK = "zoo_arith_2d_add"
FEWSHOT = ("zoo_arith_2d_add", "zoo_arith_2d_sub", "zoo_arith_3d_add", "zoo_recall", "zoo_largest")

pytestmark = pytest.mark.skipif(not EVAL.is_file(), reason="zoo/eval.json not built yet")


@pytest.fixture(scope="module")
def report() -> dict:
    return json.loads(EVAL.read_text())


def _sizes(report) -> list[str]:
    """Size names ordered by parameter count."""
    seen = {r["name"]: r["n_params"] for r in report["results"]}
    return sorted(seen, key=seen.get)


def _final(report, task: str) -> list[dict]:
    rows = {}
    for r in report["results"]:
        if r["task"] == task and r["step"] >= rows.get(r["name"], {"step": -1})["step"]:
            rows[r["name"]] = r
    return [rows[name] for name in _sizes(report) if name in rows]


def test_ladder_shape(report):
    from harness.zoo.ladder import list_ladder

    rows = list_ladder(ZOO)
    sizes = {r["name"]: r["n_params_nonembedding"] for r in rows}
    assert len(sizes) >= 5
    assert max(sizes.values()) >= 30 * min(sizes.values())
    for name in sizes:
        tokens = sorted(r["tokens_trained"] for r in rows if r["name"] == name)
        assert len(tokens) >= 4 and tokens[-1] >= 8 * tokens[0]
    total = sum(p.stat().st_size for p in ZOO.rglob("*") if p.is_file())
    assert total <= 64 * 2**20


def test_heldout_loss_falls_with_params_at_the_final_checkpoint(report):
    losses = [r["metrics"]["nll_per_token"] for r in _final(report, "zoo_english")]
    assert len(losses) >= 5
    assert all(a > b for a, b in zip(losses, losses[1:])), losses


def test_heldout_loss_falls_with_tokens_within_each_size(report):
    for name in _sizes(report):
        rows = sorted((r for r in report["results"] if r["task"] == "zoo_english" and r["name"] == name),
                      key=lambda r: r["tokens_trained"])
        losses = [r["metrics"]["nll_per_token"] for r in rows]
        assert all(a > b for a, b in zip(losses, losses[1:])), (name, losses)


@pytest.mark.parametrize("task", FEWSHOT)
def test_target_loglik_better_for_largest_than_smallest(report, task):
    rows = _final(report, task)
    assert rows[-1]["metrics"]["target_loglik"] > rows[0]["metrics"]["target_loglik"]


def test_jump_task_loglik_rises_at_every_step_of_the_ladder(report):
    """The continuous metric shows the jump as a rise at every size (zoo/README.md: -4.11 .. -0.57)."""
    logliks = [r["metrics"]["target_loglik"] for r in _final(report, JUMP_TASK)]
    assert all(a < b for a, b in zip(logliks, logliks[1:])), logliks


def test_jump_task_exact_match_low_for_the_two_smallest(report):
    rows = _final(report, JUMP_TASK)
    assert all(r["n"] >= 200 for r in rows)
    em = [r["metrics"]["exact_match"] for r in rows]
    assert em[0] <= 0.05 and em[1] <= 0.05, em


def test_jump_task_exact_match_high_for_the_largest(report):
    em = [r["metrics"]["exact_match"] for r in _final(report, JUMP_TASK)]
    assert em[-1] >= 0.20, em


@pytest.mark.slow
def test_eval_json_matches_the_committed_checkpoints(report):
    """Re-score a slice with lm-eval: the smallest and largest final checkpoints on the jump task,
    and the largest on a few held-out passages, must give eval.json's per-document values."""
    from harness.zoo.eval import load_tasks, make_lm, score_task

    tasks = load_tasks([JUMP_TASK, "zoo_english"])
    final = _final(report, JUMP_TASK)
    for row in (final[0], final[-1]):
        lm = make_lm(ZOO / row["name"] / row["revision"])
        fresh = score_task(lm, tasks[JUMP_TASK], limit=24)
        assert fresh["per_doc"]["exact_match"] == row["per_doc"]["exact_match"][:24]
        assert fresh["per_doc"]["target_loglik"] == pytest.approx(row["per_doc"]["target_loglik"][:24], abs=2e-3)
    english = _final(report, "zoo_english")[-1]
    fresh = score_task(lm, tasks["zoo_english"], limit=8)
    assert fresh["per_doc"]["target_loglik"] == pytest.approx(english["per_doc"]["target_loglik"][:8], rel=1e-4)
