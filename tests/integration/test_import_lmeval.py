"""Results lm-eval writes itself import to the scores `harness run` computes for the same model and tasks.

lm-eval 0.4 evaluates the small tiny model on the three local tasks (one of each output type) and writes
results_<timestamp>.json and samples_<task>_<timestamp>.jsonl exactly as its CLI does with
`--output_path DIR --log_samples` (the same EvaluationTracker calls, in process, so that bootstrap_iters can
equal the sweep's: the CLI has no flag for it). `harness import` reads that folder; `harness run` evaluates
the same model with lm-eval's own HFLM backend. Every metric both have must agree: lm-eval's metrics and
stderrs (same code, same responses), and the continuous twins the import rebuilds from logged responses.
Offline: local model, local JSONL tasks, HF_HUB_OFFLINE and HF_DATASETS_OFFLINE set.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.cli import main
from tests.tiny import TASK_NAMES

pytestmark = [pytest.mark.ray, pytest.mark.slow]
BOOTSTRAP_ITERS = 1000  # the sweep's default, so bootstrapped stderrs are drawn alike
REL_TOL = 1e-9


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def lm_eval_output(world, folder) -> None:
    """What `lm_eval run --model hf --model_args pretrained=MODEL --device cpu --log_samples --output_path
    FOLDER` writes (lm_eval/_cli/run.py: simple_evaluate, then the tracker's two save calls)."""
    import lm_eval
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    tracker = EvaluationTracker(output_path=str(folder))
    results = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={world['small']}", tasks=list(TASK_NAMES),
                                      device="cpu", batch_size=4, bootstrap_iters=BOOTSTRAP_ITERS, log_samples=True,
                                      evaluation_tracker=tracker,
                                      task_manager=TaskManager(include_path=str(world["tasks"])))
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task in results["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])


def _close(a, b) -> bool:
    missing = [x is None or (isinstance(x, float) and math.isnan(x)) for x in (a, b)]
    return all(missing) if any(missing) else math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


def test_lm_eval_files_import_to_the_scores_of_harness_run(tiny_world, tmp_path, capsys):
    lm_eval_output(tiny_world, tmp_path / "lm_eval")
    assert len(list((tmp_path / "lm_eval").rglob("samples_*.jsonl"))) == len(TASK_NAMES)
    meta = tmp_path / "meta.yaml"
    meta.write_text(f"models:\n  {tiny_world['small'].name}:\n    n_params_nonembedding: 1000\n")
    assert main(["import", str(tmp_path / "lm_eval"), "--out", str(tmp_path / "imported"), "--meta", str(meta),
                 "--no-analyze"]) == 0
    assert main(["run", "--models", str(tiny_world["small"]), "--tasks", ",".join(TASK_NAMES), "--include-path",
                 str(tiny_world["tasks"]), "--out", str(tmp_path / "run"), "--device", "cpu", "--backend", "hf",
                 "--batch-size", "4", "--no-analyze"]) == 0
    imported = pd.read_parquet(tmp_path / "imported" / "scores.parquet").set_index(["task", "metric", "filter"])
    run = pd.read_parquet(tmp_path / "run" / "scores.parquet").set_index(["task", "metric", "filter"])
    shared = sorted(set(imported.index) & set(run.index))
    lines = [f"{'task':<9} {'metric':<16} {'import value':>22} {'run value':>22} {'import stderr':>20} {'run stderr':>20}"]
    for key in shared:
        a, b = imported.loc[key], run.loc[key]
        lines.append(f"{key[0]:<9} {key[1]:<16} {a.value:>22.15g} {b.value:>22.15g} {a.stderr:>20.12g} {b.stderr:>20.12g}")
        assert _close(a.value, b.value), (key, a.value, b.value)
        assert _close(a.stderr, b.stderr) or pd.isna(a.stderr) or pd.isna(b.stderr), (key, a.stderr, b.stderr)
        assert a.n == b.n and a.n_params == b.n_params, key  # lm-eval's parameter count is the run's measured one
    print("\n".join(lines))
    assert {("tiny_mc", "acc", "none"), ("tiny_mc", "brier", "none"), ("tiny_mc", "target_loglik", "none"),
            ("tiny_gen", "exact_match", "none"), ("tiny_gen", "edit_distance", "none"),
            ("tiny_ppl", "bits_per_byte", "none"), ("tiny_ppl", "target_loglik", "none")} <= set(shared)
    only_run = set(run.index) - set(imported.index)
    assert only_run <= {("tiny_ppl", "nll_per_token", "none"), ("tiny_gen", "target_loglik", "none")}, only_run
    _assert_same_documents(tmp_path)


def _assert_same_documents(tmp_path) -> None:
    """Per document too: every column both samples tables have agrees."""
    from harness.analysis.analyze import load_samples

    imported, run = load_samples(tmp_path / "imported"), load_samples(tmp_path / "run")
    for task in TASK_NAMES:
        a = imported[imported.task == task].set_index("doc_id").sort_index()
        b = run[run.task == task].set_index("doc_id").sort_index()
        assert list(a.index) == list(b.index)
        columns = [c for c in a.columns if c in b.columns and c not in ("model", "revision", "task")
                   and a[c].notna().any()]
        assert columns, task
        assert task != "tiny_mc" or "n_choices" in columns  # both record the choices: chance is known
        for column in columns:
            assert all(_close(x, y) for x, y in zip(a[column], b[column])), (task, column)
