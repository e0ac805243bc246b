"""End to end through the CLI with real Ray, lm-eval, transformers and Parquet.

Parity: the harness's scores equal `lm_eval.simple_evaluate`'s for the same model and tasks,
with 1 and with 2 workers. Resume: a rerun recomputes only missing shards, with identical results.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from harness.cli import main
from tests.tiny import TASK_NAMES

pytestmark = [pytest.mark.ray, pytest.mark.slow]
TASKS = ",".join(TASK_NAMES)


def _run(world, out, *extra: str) -> int:
    return main(["run", "--models", str(world["small"]), "--tasks", TASKS, "--include-path",
                 str(world["tasks"]), "--out", str(out), "--docs-per-shard", "4", "--device", "cpu",
                 "--batch-size", "4", "--no-analyze", *extra])


def _broken_copy(world, tmp_path):
    """The small model with its weights file replaced by garbage: it cannot load."""
    broken = tmp_path / "broken"
    broken.mkdir()
    for src in world["small"].iterdir():
        (broken / src.name).write_bytes(src.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    return broken


@pytest.fixture(scope="module")
def reference(tiny_world):
    """lm-eval's own numbers for the small model: simple_evaluate with HFLM on the CPU."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=str(tiny_world["small"]), device="cpu", batch_size=4)
    out = lm_eval.simple_evaluate(model=lm, tasks=list(TASK_NAMES), bootstrap_iters=1000,
                                  task_manager=TaskManager(include_path=str(tiny_world["tasks"])))
    return out["results"]


def _assert_parity(scores: pd.DataFrame, reference: dict, rel_tol: float = 1e-9) -> int:
    """Every scalar metric of simple_evaluate's results equals the run's. Discrete metrics (accuracy,
    exact match) must be equal; continuous ones (perplexities) within rel_tol."""
    compared = 0
    for task, metrics in reference.items():
        for key, expected in metrics.items():
            if "_stderr" in key or not isinstance(expected, float) or "," not in key:
                continue
            metric, filt = key.split(",", 1)
            row = scores[(scores.task == task) & (scores.metric == metric) & (scores["filter"] == filt)]
            assert len(row) == 1, f"{task} {key} missing from scores.parquet"
            discrete = metric in ("acc", "acc_norm", "exact_match")
            tol = 1e-9 if discrete else rel_tol
            assert math.isclose(row.value.iloc[0], expected, rel_tol=tol, abs_tol=1e-12), (task, key)
            compared += 1
    return compared


def test_scores_equal_simple_evaluate_with_tasks_built_in_processes_and_then_cached(tiny_world, reference, tmp_path,
                                                                                    monkeypatch, capsys):
    """Cold: every task built in its own process (each with its own seeded sampler); warm: every
    task's requests loaded from the request cache. Both score exactly as lm-eval does."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HARNESS_BUILD_WORKERS", "3")
    for attempt, said in (("cold", "building the requests of 3 task(s) in 3 processes"),
                          ("warm", "requests: 3 task(s) from the cache, 0 built")):
        out = tmp_path / attempt
        capsys.readouterr()
        assert _run(tiny_world, out, "--backend", "hf") == 0
        assert said in capsys.readouterr().err, attempt
        assert _assert_parity(pd.read_parquet(out / "scores.parquet"), reference) >= 6, attempt


@pytest.mark.parametrize("workers,backend", [(1, "hf"), (2, "hf"), (2, "fast")])
def test_scores_equal_simple_evaluate(tiny_world, reference, tmp_path, workers, backend):
    """hf is lm-eval's own HFLM: bit-for-bit. fast (the default) computes the same log-likelihoods
    in another order of float operations: within 1e-4 nats a request, so perplexities agree to 1e-6."""
    out = tmp_path / "run"
    assert _run(tiny_world, out, "--workers", str(workers), "--backend", backend) == 0
    scores = pd.read_parquet(out / "scores.parquet")
    rel_tol = 1e-9 if backend == "hf" else 1e-6
    assert _assert_parity(scores, reference, rel_tol) >= 6  # acc, acc_norm, exact_match, 3 perplexity metrics
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "done"
    assert {e["status"] for e in manifest["shards"]} == {"done"}
    used = {e["worker"] for e in manifest["shards"]}
    assert len(used) == workers  # every slot pulled work
    assert manifest["replicas"]["tiny-s@main"]["n_params"] == scores.n_params.iloc[0]


def test_results_contract(tiny_world, tmp_path):
    out = tmp_path / "run"
    assert _run(tiny_world, out, "--workers", "1", "--limit", "8") == 0
    requests = pd.read_parquet(out / "requests")
    for column in ("model", "revision", "task", "doc_id", "request_idx", "request_type",
                   "loglikelihood", "is_greedy", "n_tokens", "generation"):
        assert column in requests.columns
    gen = requests[requests.request_type == "generate_until"]
    assert gen.loglikelihood.isna().all() and gen.generation.notna().all()
    assert (requests[requests.request_idx == -1].request_type == "loglikelihood").all()
    samples = pd.concat([pd.read_parquet(p) for p in (out / "samples").rglob("*.parquet")])
    assert len(samples) == 3 * 8
    mc = samples[samples.task == "tiny_mc"]
    assert mc.brier.between(0, 2).all() and (mc.target_loglik < 0).all() and mc.acc.notna().all()
    gen_samples = samples[samples.task == "tiny_gen"]
    assert (gen_samples.target_loglik < 0).all() and (gen_samples.edit_distance >= 0).all()
    ppl = samples[samples.task == "tiny_ppl"]
    assert (ppl.n_words > 0).all() and (ppl.n_bytes > ppl.n_words).all() and (ppl.n_tokens > 0).all()
    scores = pd.read_parquet(out / "scores.parquet")
    assert {"target_loglik", "brier", "edit_distance", "nll_per_token"} <= set(scores.metric)
    assert scores.n_params_nonembedding.lt(scores.n_params).all()


def test_resume_recomputes_only_missing_shards(tiny_world, tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(tiny_world, out, "--workers", "2") == 0
    first = pd.read_parquet(out / "scores.parquet").sort_values(["task", "metric", "filter"])
    files = sorted((out / "requests").rglob("*.parquet"))
    lost = files[::3]  # as if the driver died with these shards in flight
    for path in lost:
        path.unlink()
    capsys.readouterr()
    assert _run(tiny_world, out, "--workers", "2") == 0
    err = capsys.readouterr().err
    assert f"reusing {len(files) - len(lost)} finished shards, running {len(lost)}" in err
    second = pd.read_parquet(out / "scores.parquet").sort_values(["task", "metric", "filter"])
    pd.testing.assert_frame_equal(first.reset_index(drop=True), second.reset_index(drop=True))
    manifest = json.loads((out / "manifest.json").read_text())
    statuses = [e["status"] for e in manifest["shards"]]
    assert statuses.count("done") == len(lost) and statuses.count("reused") == len(files) - len(lost)


def test_broken_model_fails_its_shards_and_the_rest_finish(tiny_world, tmp_path):
    broken = _broken_copy(tiny_world, tmp_path)
    out = tmp_path / "run"
    rc = main(["run", "--models", f"{tiny_world['small']},{broken}", "--tasks", "tiny_mc", "--include-path",
               str(tiny_world["tasks"]), "--out", str(out), "--docs-per-shard", "4", "--device", "cpu",
               "--workers", "2", "--no-analyze"])
    assert rc == 1
    manifest = json.loads((out / "manifest.json").read_text())
    failed = [e for e in manifest["shards"] if e["status"] == "failed"]
    assert failed and all(e["model"] == "broken" and "failed to load" in e["error"] for e in failed)
    scores = pd.read_parquet(out / "scores.parquet")
    assert set(scores.model) == {"tiny-s"}


def test_a_run_in_which_every_shard_fails_exits_1(tiny_world, tmp_path, capsys):
    broken = _broken_copy(tiny_world, tmp_path)
    out = tmp_path / "run"
    rc = main(["run", "--models", str(broken), "--tasks", "tiny_mc", "--include-path", str(tiny_world["tasks"]),
               "--out", str(out), "--limit", "2", "--device", "cpu", "--workers", "1", "--no-analyze"])
    assert rc == 1
    assert "failed shard" in capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and isinstance(manifest["events"], list)
    assert pd.read_parquet(out / "scores.parquet").empty
