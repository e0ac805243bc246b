"""analyze_run on synthetic run folders written to the results contract (real Parquet files)."""
import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import analyze as cli_analyze
from harness.analysis.analyze import analyze_run, load_scores
from harness.errors import UserError

SIZES = np.array([1e7, 3e7, 1e8, 3e8, 1e9, 3e9])
TOKENS = (1e9, 3e9, 1e10, 3e10)  # revisions per model: four token counts pin B and beta down
TRUTH = {"E": 1.6, "A": 300.0, "alpha": 0.3, "B": 900.0, "beta": 0.3}
# Few-shot task whose exact match jumps while edit distance improves steadily (Schaeffer's mirage).
EXACT = np.array([0.0, 0.01, 0.02, 0.04, 0.55, 0.95])
EDIT = np.array([8.0, 7.0, 6.0, 5.0, 4.0, 3.0])
N_DOCS = 120


def _loss(n, d):
    return TRUTH["E"] + TRUTH["A"] / n ** TRUTH["alpha"] + TRUTH["B"] / d ** TRUTH["beta"]


def _score_rows(model, rev, task, n, tokens, metrics, filters=None):
    return [{"model": model, "revision": rev, "task": task, "metric": m, "filter": (filters or {}).get(m, "none"),
             "value": float(v), "stderr": None, "n": N_DOCS, "n_params": int(n * 1.3),
             "n_params_nonembedding": int(n), "tokens_trained": tokens} for m, v in metrics.items()]


def make_run(root: Path, sizes=SIZES, samples=True, acc_values=None, tasks=("wiki", "arith", "mc")) -> Path:
    rng = np.random.default_rng(0)
    run = root / "run"
    (run / "samples").mkdir(parents=True)
    scores, docs = [], []
    n_tok = rng.integers(100, 300, N_DOCS)
    difficulty = rng.normal(1.0, 0.1, N_DOCS)
    for i, n in enumerate(sizes):
        model = f"m{i}"
        for rev, d in zip(("step1", "step3", "step10", "step30"), TOKENS):
            ll = -_loss(n, d) * n_tok * difficulty * np.exp(rng.normal(0, 0.01, N_DOCS))
            docs.append(pd.DataFrame({"model": model, "revision": rev, "task": "wiki", "doc_id": np.arange(N_DOCS),
                                      "target_loglik": ll, "n_tokens": n_tok, "n_bytes": 4 * n_tok}))
            nll = -ll.sum() / n_tok.sum()
            scores += _score_rows(model, rev, "wiki", n, int(d), {
                "nll_per_token": nll, "bits_per_byte": -ll.sum() / (4 * n_tok.sum() * math.log(2)),
                "word_perplexity": math.exp(nll * 1.3)})
        em = (rng.uniform(size=N_DOCS) < EXACT[i]).astype(float)
        edit = np.maximum(rng.normal(EDIT[i], 1.0, N_DOCS), 0)
        tl = rng.normal(-EDIT[i], 0.5, N_DOCS)
        # Under a filter other than "none" the results stage names the sample column "metric,filter".
        docs.append(pd.DataFrame({"model": model, "revision": "step30", "task": "arith", "doc_id": np.arange(N_DOCS),
                                  "exact_match,remove_whitespace": em, "edit_distance": edit, "target_loglik": tl}))
        scores += _score_rows(model, "step30", "arith", n, int(TOKENS[-1]), {
            "exact_match": em.mean(), "edit_distance": edit.mean(), "target_loglik": tl.mean()},
            filters={"exact_match": "remove_whitespace"})
        acc_p = 0.25 + 0.1 * i if acc_values is None else acc_values[i]
        acc = (rng.uniform(size=N_DOCS) < acc_p).astype(float)
        brier = np.clip(rng.normal(0.75 - 0.08 * i, 0.05, N_DOCS), 0, 2)
        docs.append(pd.DataFrame({"model": model, "revision": "step30", "task": "mc", "doc_id": np.arange(N_DOCS),
                                  "acc": acc, "brier": brier}))
        scores += _score_rows(model, "step30", "mc", n, int(TOKENS[-1]), {"acc": acc.mean(), "brier": brier.mean()})
    scores = [r for r in scores if r["task"] in tasks]
    docs = [f for f in docs if f["task"].iloc[0] in tasks]
    pd.DataFrame(scores).to_parquet(run / "scores.parquet")
    if samples:
        for i, frame in enumerate(docs):
            sub = run / "samples" / f"shard{i:03d}"
            sub.mkdir()
            frame.to_parquet(sub / "part.parquet")
    return run


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("a"))
    return run, analyze_run(run, n_boot=60, seed=1)


def test_writes_fits_bands_plots_and_report(analyzed):
    run, summary = analyzed
    fits = pd.read_parquet(run / "fits.parquet")
    for col in ("task", "metric", "law", "param", "estimate", "ci_low", "ci_high", "r2", "rmse", "dof"):
        assert col in fits.columns
    assert {"power_law", "sigmoid", "chinchilla"} <= set(fits["law"])
    backtest = pd.read_parquet(run / "backtest.parquet")
    assert {"held_out_model", "pi_low", "pi_high", "chosen", "abs_error"} <= set(backtest.columns)
    assert len(summary.plots) >= 4 and all(p.stat().st_size > 10_000 for p in summary.plots)
    assert (run / "plots" / "tokens_wiki_nll_per_token.png").is_file()
    text = (run / "report.md").read_text()
    for needle in ("## Answers", "## Fits", "## Emergence", "## Back-test", "## Signal and noise",
                   "## Compute-optimal frontier", "plots/"):
        assert needle in text
    assert text.index("## Answers") < text.index("## Back-test") < text.index("## Fits")


def test_power_law_recovers_exponent_with_interval(analyzed):
    run, _ = analyzed
    fits = pd.read_parquet(run / "fits.parquet")
    row = fits[(fits.task == "wiki") & (fits.metric == "nll_per_token") & (fits.law == "power_law")
               & (fits.param == "alpha")].iloc[0]
    assert row.ci_low < row.estimate < row.ci_high
    assert row.estimate == pytest.approx(TRUTH["alpha"], rel=0.15)
    assert row.ci_method.startswith("paired document bootstrap")


def test_chinchilla_fit_on_revisions(analyzed):
    run, _ = analyzed
    fits = pd.read_parquet(run / "fits.parquet")
    ch = fits[(fits.law == "chinchilla") & (fits.task == "wiki")].set_index("param")["estimate"]
    assert ch["E"] == pytest.approx(TRUTH["E"], rel=0.1)
    assert ch["N_opt_exponent"] + ch["D_opt_exponent"] == pytest.approx(1.0)


def test_mirage_and_no_jump_verdicts(analyzed):
    _, summary = analyzed
    verdicts = {v.task: v for v in summary.verdicts}
    assert verdicts["arith"].verdict.startswith("mirage") and verdicts["arith"].discrete_metric == "exact_match"
    assert verdicts["mc"].verdict.startswith("no jump")


def test_filtered_metric_has_document_bootstrap_intervals(analyzed):
    run, _ = analyzed
    fits = pd.read_parquet(run / "fits.parquet")
    em = fits[(fits.task == "arith") & (fits.metric == "exact_match") & fits.law.isin(["sigmoid", "emergence"])]
    assert set(em["filter"]) == {"remove_whitespace"} and set(em["law"]) == {"sigmoid", "emergence"}
    assert em["ci_method"].str.startswith("paired document bootstrap").all()
    score = em[em.law == "emergence"].iloc[0]
    assert np.isfinite(score.ci_low) and score.ci_low < score.ci_high


def test_backtest_reports_error_and_interval(analyzed):
    run, summary = analyzed
    bt = summary.backtests
    row = bt[(bt.task == "wiki") & (bt.metric == "nll_per_token") & bt.chosen].iloc[0]
    assert row.n_params == SIZES.max() and row.held_out_model == "m5" and row.held_out_revision == "step30"
    assert abs(row.error) / row.measured < 0.05 and row.pi_low < row.predicted < row.pi_high
    assert row.pi_low <= row.measured <= row.pi_high and row.pi_level == 0.9
    # One chosen method per (task, metric), every method's prediction kept.
    assert (bt.groupby(["task", "metric"])["chosen"].sum() == 1).all()
    # arith has a task loss (target_loglik), so the two-step method applies; mc has none.
    assert set(bt.loc[(bt.task == "arith") & (bt.metric == "exact_match"), "method"]) >= {"sigmoid", "two_step"}
    assert "two_step" not in set(bt.loc[(bt.task == "mc") & (bt.metric == "acc"), "method"])
    assert pd.read_parquet(run / "backtest.parquet").shape == bt.shape


def test_two_sizes_are_skipped_with_a_reason_but_written(tmp_path):
    run = make_run(tmp_path, sizes=SIZES[:2])
    summary = analyze_run(run, n_boot=20)
    assert summary.n_fits == 0 and (run / "fits.parquet").is_file() and (run / "report.md").is_file()
    assert any("only 2 distinct size" in s for s in summary.skipped)
    assert "only 2 distinct size" in (run / "report.md").read_text()


def test_constant_and_nan_values_are_skipped(tmp_path):
    run = make_run(tmp_path, acc_values=[0.0] * 6, tasks=("arith", "mc"))
    scores = pd.read_parquet(run / "scores.parquet")
    scores.loc[(scores.task == "arith") & (scores.metric == "edit_distance"), "value"] = np.nan
    scores.to_parquet(run / "scores.parquet")
    summary = analyze_run(run, n_boot=20)
    assert any("mc/acc" in s and "constant" in s for s in summary.skipped)
    assert any("arith/edit_distance" in s and "no finite values" in s for s in summary.skipped)
    fits = pd.read_parquet(run / "fits.parquet")
    assert fits[(fits.task == "mc") & (fits.metric == "acc") & (fits.law == "sigmoid")].empty


def test_run_without_samples_falls_back_to_model_bootstrap(tmp_path):
    run = make_run(tmp_path, samples=False, tasks=("mc",))
    fits = pd.read_parquet(analyze_run(run, n_boot=40).fits_path)
    alpha = fits[(fits.metric == "brier") & (fits.law == "power_law") & (fits.param == "alpha")].iloc[0]
    assert alpha.ci_method.startswith("model bootstrap") and alpha.ci_low <= alpha.estimate <= alpha.ci_high
    # Back-test intervals come from forward-chaining errors, not from documents: they exist here too.
    bt = pd.read_parquet(run / "backtest.parquet")
    assert len(bt) and bt.loc[bt.chosen, "pi_low"].notna().all()


def test_too_few_points_for_any_bootstrap_gives_no_interval(tmp_path):
    run = make_run(tmp_path, sizes=SIZES[:3], samples=False, tasks=("mc",))
    fits = pd.read_parquet(analyze_run(run, n_boot=20).fits_path)
    assert not fits.empty and fits["ci_low"].isna().all() and set(fits["ci_method"]) == {"none"}


def test_missing_scores_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="scores.parquet"):
        analyze_run(tmp_path)


def test_cli_analyze(tmp_path, capsys):
    run = make_run(tmp_path, sizes=SIZES[:3], tasks=("mc",))
    parser = argparse.ArgumentParser(prog="harness")
    cli_analyze.register(parser.add_subparsers())
    args = parser.parse_args(["analyze", str(run), "--n-boot", "10"])
    assert args.func(args) == 0
    assert "fits.parquet" in capsys.readouterr().out


def test_scores_without_finished_schedule_load_as_unknown(tmp_path):
    """A scores.parquet of an older harness has no finished_schedule column: every row reads as unknown."""
    run = make_run(tmp_path, samples=False, tasks=("wiki",))
    assert "finished_schedule" not in pd.read_parquet(run / "scores.parquet").columns
    scores = load_scores(run)
    assert len(scores) and scores["finished_schedule"].isna().all()
    older = pd.read_parquet(run / "scores.parquet")
    older.assign(finished_schedule=[True, None] * (len(older) // 2)).to_parquet(run / "scores.parquet")
    assert load_scores(run)["finished_schedule"].tolist() == [True, None] * (len(older) // 2)


def test_measured_scores_pick_each_tasks_own_checkpoint():
    # Perplexity on every revision (a shared budget at 8 tokens), a few-shot task on each model's last
    # revision only: the few-shot rows stay in the table, at their own (only) checkpoint.
    from harness.analysis.report import _scores_section

    rows = []
    for model, n, steps in (("a", 1e4, (4, 8, 16)), ("b", 4e4, (2, 8))):
        for step in steps:
            rows.append(dict(model=model, revision=f"step{step}", task="ppl", metric="nll_per_token", filter="none",
                             value=5.0 - step / 100, n_params_nonembedding=n, tokens_trained=step))
        rows.append(dict(model=model, revision=f"step{steps[-1]}", task="fewshot", metric="acc", filter="none",
                         value=0.5, n_params_nonembedding=n, tokens_trained=steps[-1]))
    text = "\n".join(_scores_section(pd.DataFrame(rows)))
    assert "| a | step16 |" in text and "| b | step8 |" in text  # the few-shot rows, at each model's last
    ppl = text[text.index("### ppl"):]
    assert "| a | step8 |" in ppl and "step16" not in ppl  # perplexity at the shared token count
