"""The claims about the committed ladder (zoo/; issues 7 and 13), from its lm-eval evaluation
(zoo/eval.json, made by `python -m harness.zoo.eval`), plus a live lm-eval re-check that eval.json
belongs to the committed checkpoints. The L(N, D) claims run the analysis's own fit
(`harness.analysis.laws.chinchilla`) on eval.json's held-out loss of every revision."""

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
    """Each size's row of `task` at the step every size shares (step4096), ordered by size: where the
    sizes are compared at equal tokens and the few-shot tasks were scored."""
    from harness.zoo.eval import shared_step

    compare = shared_step([r for r in report["results"] if r["task"] == "zoo_english"])
    rows = {r["name"]: r for r in report["results"] if r["task"] == task and r["step"] == compare[r["name"]]}
    return [rows[name] for name in _sizes(report) if name in rows]


def test_ladder_shape(report):
    from harness.zoo.ladder import list_ladder

    rows = list_ladder(ZOO)
    sizes = {r["name"]: r["n_params_nonembedding"] for r in rows}
    assert len(sizes) >= 5
    assert max(sizes.values()) >= 30 * min(sizes.values())
    for name in sizes:
        tokens = sorted(r["tokens_trained"] for r in rows if r["name"] == name)
        assert len(tokens) >= 5 and tokens[-1] >= 16 * tokens[0]
    total = sum(p.stat().st_size for p in ZOO.rglob("*") if p.is_file())
    assert total <= 64 * 2**20


def test_heldout_loss_falls_with_params_at_the_shared_budget(report):
    losses = [r["metrics"]["nll_per_token"] for r in _final(report, "zoo_english")]
    assert len(losses) >= 5
    assert all(a > b for a, b in zip(losses, losses[1:])), losses


# Two budgets of one size are two runs (cooldowns branched at different steps); where the two smallest
# sit on their floor, a run 1.2-1.5x longer came out up to 0.009 nats worse (zoo/README.md).
RUN_NOISE_NATS = 0.01


def test_heldout_loss_falls_with_tokens_within_each_size(report):
    """Strictly between any two budgets of a size at least 2x apart; between nearer ones, up to the
    run-to-run noise; and the longest budget is every size's best."""
    for name in _sizes(report):
        rows = sorted((r for r in report["results"] if r["task"] == "zoo_english" and r["name"] == name),
                      key=lambda r: r["tokens_trained"])
        pairs = [(a, b) for i, a in enumerate(rows) for b in rows[i + 1:]]
        for a, b in pairs:
            gain = a["metrics"]["nll_per_token"] - b["metrics"]["nll_per_token"]
            far = b["tokens_trained"] >= 2 * a["tokens_trained"]
            assert gain > 0 if far else gain > -RUN_NOISE_NATS, (name, a["revision"], b["revision"], gain)
        assert min(rows, key=lambda r: r["metrics"]["nll_per_token"]) is rows[-1], name


@pytest.mark.parametrize("task", FEWSHOT)
def test_target_loglik_better_for_largest_than_smallest(report, task):
    rows = _final(report, task)
    assert rows[-1]["metrics"]["target_loglik"] > rows[0]["metrics"]["target_loglik"]


def test_jump_task_loglik_rises_at_every_step_of_the_ladder(report):
    """The continuous metric shows the jump as a rise at every size (zoo/README.md: -4.25 .. -0.08)."""
    logliks = [r["metrics"]["target_loglik"] for r in _final(report, JUMP_TASK)]
    assert all(a < b for a, b in zip(logliks, logliks[1:])), logliks


def test_jump_task_exact_match_low_for_the_two_smallest(report):
    rows = _final(report, JUMP_TASK)
    assert all(r["n"] >= 200 for r in rows)
    em = [r["metrics"]["exact_match"] for r in rows]
    assert em[0] <= 0.05 and em[1] <= 0.05, em


def test_jump_task_exact_match_high_for_the_largest(report):
    em = [r["metrics"]["exact_match"] for r in _final(report, JUMP_TASK)]
    assert em[-1] >= 0.50, em


def test_every_revision_is_a_finished_wsd_schedule():
    metas = [json.loads(p.read_text()) for p in ZOO.glob("*/step*/harness.json")]
    assert len(metas) >= 35
    for meta in metas:
        assert meta["schedule"] == "wsd" and meta["finished_schedule"] is True, meta
        assert meta["budget_steps"] == meta["step"] and meta["cooldown_start_step"] < meta["step"], meta


@pytest.fixture(scope="module")
def law(report):
    return english_law(report)


def english_law(report: dict):
    """The analysis's L(N, D) fit on eval.json's held-out loss (every passage, every revision), with
    its point bootstrap: what `harness analyze` fits on the default run's zoo_english (100 passages)."""
    import numpy as np
    import pandas as pd

    from harness.analysis.laws import chinchilla
    from harness.analysis.series import Series, run_names

    rows = sorted((r for r in report["results"] if r["task"] == "zoo_english"),
                  key=lambda r: (r["n_params_nonembedding"], r["tokens_trained"]))
    finished = [json.loads((ZOO / r["name"] / r["revision"] / "harness.json").read_text())["finished_schedule"]
                for r in rows]
    runs = run_names(pd.DataFrame({"model": [r["name"] for r in rows], "revision": [r["revision"] for r in rows],
                                   "finished_schedule": finished}))
    series = Series(task="zoo_english", metric="nll_per_token", filter="none",
                    models=tuple(r["name"] for r in rows), revisions=tuple(r["revision"] for r in rows),
                    n=np.array([r["n_params_nonembedding"] for r in rows], float),
                    d=np.array([r["tokens_trained"] for r in rows], float),
                    y=np.array([r["metrics"]["nll_per_token"] for r in rows], float), boot=None, runs=runs)
    return chinchilla(series, 0.95, n_boot=200, seed=0)


# Issue 13 asks for R² >= 0.98 and Approach 3's frontier with intervals from the committed ladder. The
# IsoFLOP ladder gets R² 0.944: the small sizes' loss flattens in D sooner than E + A/N^alpha + B/D^beta
# allows (zoo/README.md, "L(N, D)"). Strict: these fail loudly, as xpass, the day a ladder meets them.
SHORTFALL = "issue 13 not met yet: the law's R² is 0.944 on the committed ladder (zoo/README.md)"


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=SHORTFALL)
def test_law_describes_the_heldout_loss(law):
    """Approach 3 on every (N, D) point: R² >= 0.98, E > 0 with a finite interval, nothing on a
    bound, no residual trend in N or D, and the reliability checks pass."""
    import numpy as np

    assert law.gof.r2 >= 0.98, law.gof
    assert law.reliable, law.caveats
    assert law.caveats == (), law.caveats
    assert law.params["E"] > 0
    low, high = np.nanpercentile(law.draws["E"], [2.5, 97.5])
    assert 0 < low <= law.params["E"] <= high < np.inf
    assert law.trends and not any(t.flagged for t in law.trends), law.trends


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=SHORTFALL)
def test_frontier_exponents_have_finite_intervals(law):
    """N_opt ∝ C^a and D_opt ∝ C^b with a + b = 1, each with a finite 95% interval inside (0, 1),
    and a finite tokens-per-parameter ratio at the ladder's compute (compared with Chinchilla's
    0.5 / 0.5 / ~20 in the report; it need not match at this scale)."""
    f = law.frontier
    assert f is not None and f.a is not None, "no Approach 3 frontier"
    assert abs(f.a.value + f.b.value - 1) < 1e-9
    for e in (f.a, f.b):
        assert 0 < e.low <= e.value <= e.high < 1, e
    assert 0 < f.ratio_ladder.low <= f.ratio_ladder.value <= f.ratio_ladder.high < float("inf")
    assert f.profiles, "no IsoFLOP profile"


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


def test_the_analysis_says_whether_the_law_holds(law):
    """Every point a finished run: the law comes far closer than on the first (cosine) ladder (R² 0.87,
    issue 13) or a WSD build with its learning rates (0.886, zoo/README.md); where it still misses, the
    analysis says so and derives no Approach 3 frontier, and never for the wrong reason (every revision
    is a run of its own: check (a) passes)."""
    assert law.gof.r2 >= 0.93, law.gof
    assert not any("one run" in c for c in law.caveats), law.caveats
    if not law.reliable:
        assert law.caveats and (law.frontier is None or law.frontier.a is None)
    # what R² alone does not say: small sizes' residuals rise with D, the largest's fall (zoo/README.md)
    interaction = {t.variable: t for t in law.trends}["NxD"]
    assert interaction.slopes[0] > 0 > interaction.slopes[-1]


def test_isoflop_profiles_give_a_frontier_with_intervals(law):
    """Approach 2 on the IsoFLOP design: at least 5 profiles with a minimum inside their sizes over
    more than a decade of compute, N_opt ∝ C^a with a finite interval inside (0, 1), and the
    tokens-per-parameter ratio at the profiles' middle with a finite interval. Measured: a = 0.53
    [0.37, 0.69], about 190 tokens per non-embedding parameter at 4.6e11 FLOPs (zoo/README.md)."""
    import numpy as np

    f = law.frontier
    assert f is not None and f.approach2 is not None
    with_minimum = [p.flops for p in f.profiles if np.isfinite(p.n_opt)]
    assert len(with_minimum) >= 5 and np.log10(max(with_minimum) / min(with_minimum)) > 1
    a2 = f.approach2
    assert 0 < a2.low < a2.a < a2.high < 1, a2
    ratio, low, high = a2.tokens_per_param_mid()
    assert 0 < low < ratio < high < np.inf
    # the vertices climb with compute: each profile's N_opt above the previous one's
    vertices = [p.n_opt for p in f.profiles if np.isfinite(p.n_opt)]
    assert all(x < y for x, y in zip(vertices, vertices[1:])), vertices


def test_heldout_loss_falls_with_params_at_every_budget_sizes_share(report):
    """Finished runs at equal tokens: the larger size is better wherever two or more sizes share a
    budget (step4096 for all five; the IsoFLOP design gives zoo-3 and zoo-4 the same 220 steps)."""
    rows = [r for r in report["results"] if r["task"] == "zoo_english"]
    shared = 0
    for tokens in sorted({r["tokens_trained"] for r in rows}):
        at = sorted((r for r in rows if r["tokens_trained"] == tokens), key=lambda r: r["n_params"])
        losses = [r["metrics"]["nll_per_token"] for r in at]
        shared += len(losses) >= 5
        assert all(a > b for a, b in zip(losses, losses[1:])), (tokens, losses)
    assert shared >= 1


def test_recall_is_a_labelled_negative_control(report):
    """In-context recall stays at chance for every size: the analysis's signal check reports it as
    "no signal" (guessing among the 8 values of the prompt scores 1/8; harness.analysis.chance)."""
    import pandas as pd

    from harness.analysis.chance import chance_level
    from harness.analysis.signal import NO_SIGNAL, signal_noise

    rows = _final(report, "zoo_recall")
    scores = pd.DataFrame({"model": [r["name"] for r in rows], "revision": [r["revision"] for r in rows],
                           "task": "zoo_recall", "metric": "exact_match", "filter": "none",
                           "value": [r["metrics"]["exact_match"] for r in rows], "stderr": float("nan"),
                           "n": [r["n"] for r in rows], "tokens_trained": [r["tokens_trained"] for r in rows]})
    verdict = signal_noise(scores, "zoo_recall", "exact_match", "none", chance_level("zoo_recall", "exact_match"))
    assert verdict.verdict == NO_SIGNAL, verdict.reason
