"""Plans: requests built once, documents never split across shards, stable keys, no weights loaded."""

from __future__ import annotations

import shutil

from harness.config import apply_overrides, sweep_from_mapping
from harness.checkpoint import safetensors_param_count
from harness.plan.shards import build_plan, summarize


def _sweep(world, tmp_path, **extra):
    ladder = tmp_path / "ladder"
    if not ladder.exists():
        for step in ("step1", "step2"):
            shutil.copytree(world["small"], ladder / step)
    raw = {"models": [{"name": "lad", "path": str(ladder), "revisions": ["step1", "step2"]}],
           "tasks": ["tiny_ppl", {"name": "tiny_mc", "revisions": "final"}, "tiny_gen"],
           "include_path": [str(world["tasks"])], "docs_per_shard": 5, "output": str(tmp_path / "out")}
    raw.update(extra)
    return sweep_from_mapping(raw, "test")


def test_shards_keep_documents_whole_and_keys_stable(tiny_world, tmp_path):
    sweep = _sweep(tiny_world, tmp_path)
    plan = build_plan(sweep)
    again = build_plan(sweep)
    assert [s.key for s in plan.shards] == [s.key for s in again.shards]
    assert len({s.key for s in plan.shards}) == len(plan.shards)
    per_doc = {}
    for shard in plan.shards:
        for inst in shard.instances:
            per_doc.setdefault((shard.model_revision.key, shard.task, inst.doc_id), set()).add(shard.key)
    assert all(len(keys) == 1 for keys in per_doc.values())
    # multiple choice only on the final revision; 12 docs in shards of 5 -> 3 shards per replica
    mc = [s for s in plan.shards if s.task == "tiny_mc"]
    assert {s.model_revision.revision for s in mc} == {"step2"} and len(mc) == 3
    assert len([s for s in plan.shards if s.task == "tiny_ppl"]) == 6
    # generation tasks carry one extra target-likelihood request per document
    gen = plan.tasks["tiny_gen"]
    assert sum(i.idx == -1 for i in gen.instances) == len(gen.doc_ids()) == 12


def test_keys_change_with_what_determines_results(tiny_world, tmp_path):
    base = {s.key for s in build_plan(_sweep(tiny_world, tmp_path)).shards}
    for change in ({"seed": 7}, {"num_fewshot": 1}):
        other = {s.key for s in build_plan(_sweep(tiny_world, tmp_path, **change)).shards}
        changed = {k.split("-")[0] for k in other - base}
        assert {"tiny_mc", "tiny_gen"} <= changed  # few-shot prompts changed
    flipped = build_plan(apply_overrides(_sweep(tiny_world, tmp_path), backend="hf"))  # the default is fast
    assert not {s.key for s in flipped.shards} & base


def test_summary_counts_without_loading_weights(tiny_world, tmp_path):
    sweep = _sweep(tiny_world, tmp_path)
    plan = build_plan(sweep)
    summary = summarize(plan)
    n = safetensors_param_count(tiny_world["small"])
    assert n and all(m["n_params"] == n for m in summary["models"])
    assert summary["shards"] == len(plan.shards) and summary["requests"] == sum(s.n_requests for s in plan.shards)
    assert summary["tasks"]["tiny_mc"]["num_fewshot"] == 2
    assert sum(m["cost_flops"] for m in summary["models"]) == summary["cost_flops"] > 0


def test_long_documents_close_a_shard_early(tiny_world, tmp_path):
    sweep = _sweep(tiny_world, tmp_path, tokens_per_shard=200, docs_per_shard=50)
    plan = build_plan(sweep)
    ppl = [s for s in plan.shards if s.task == "tiny_ppl" and s.model_revision.revision == "step2"]
    # perplexity documents are 50-175 estimated tokens: shards close at the budget, not at 50 docs
    assert len(ppl) >= 6 and sum(len(s.doc_ids) for s in ppl) == 12
    assert all(s.est_tokens <= 200 or len(s.doc_ids) == 1 for s in ppl)
    mc = [s for s in plan.shards if s.task == "tiny_mc"]
    assert all(s.est_tokens <= 200 or len(s.doc_ids) == 1 for s in mc)


def test_final_means_last_in_training_order_not_last_listed(tiny_world, tmp_path):
    # B5: `revisions: [step2, step1]` must still run `revisions: final` tasks on step2.
    _sweep(tiny_world, tmp_path)  # makes the ladder folder
    sweep = _sweep(tiny_world, tmp_path, models=[{"name": "lad", "path": str(tmp_path / "ladder"),
                                                   "revisions": ["step2", "step1"]}])
    mc = [s for s in build_plan(sweep).shards if s.task == "tiny_mc"]
    assert mc and {s.model_revision.revision for s in mc} == {"step2"}


def test_retrained_weights_of_the_same_size_get_new_keys(tiny_world, tmp_path):
    # B2: retraining the same architecture writes files of the same size; a rerun into the same
    # folder must not reuse the old shards.
    from safetensors.torch import load_file, save_file

    sweep = _sweep(tiny_world, tmp_path)
    keys = lambda rev: {s.key for s in build_plan(sweep).shards if s.model_revision.revision == rev}  # noqa: E731
    before, step1 = keys("step2"), keys("step1")
    weights = next((tmp_path / "ladder" / "step2").glob("*.safetensors"))
    size = weights.stat().st_size
    tensors = load_file(str(weights))
    save_file({k: v + 0.01 if v.is_floating_point() else v for k, v in tensors.items()}, str(weights),
              metadata={"format": "pt"})
    assert weights.stat().st_size == size  # same shapes, same size: only the content differs
    after = keys("step2")
    assert before and not before & after
    assert keys("step1") == step1  # the untouched revision keeps its keys (and its shards)


def test_plan_and_analysis_agree_on_the_final_revision():
    # B5: one definition of "final" for the plan (revisions: final) and the analysis (final sizes).
    import pandas as pd

    from harness.analysis.series import final_revisions
    from harness.checkpoint import training_order

    listed = ["step143000", "step1000", "main2", None]
    rows = pd.DataFrame({"model": ["m"] * 4, "revision": listed, "tokens_trained": [None] * 4})
    assert final_revisions(rows)["revision"].tolist() == [max(listed, key=training_order)] == ["step143000"]
    with_tokens = rows.assign(tokens_trained=[10, 20, None, None])
    assert final_revisions(with_tokens)["revision"].tolist() == ["step1000"]  # tokens trained decide first


def test_a_task_can_run_on_one_named_revision(tiny_world, tmp_path):
    # `revisions: step1` (any label the models list): the sizes compared at one budget, not their last.
    sweep = _sweep(tiny_world, tmp_path, tasks=["tiny_ppl", {"name": "tiny_mc", "revisions": "step1"}],
                   include_path=[str(tiny_world["tasks"])])
    plan = build_plan(sweep)
    assert {s.model_revision.revision for s in plan.shards if s.task == "tiny_mc"} == {"step1"}
    assert {s.model_revision.revision for s in plan.shards if s.task == "tiny_ppl"} == {"step1", "step2"}


def test_a_named_revision_every_model_must_list(tiny_world, tmp_path):
    import pytest

    from harness.errors import UserError

    with pytest.raises(UserError, match="task tiny_mc runs on revisions: step4096, which model lad does not list "
                                        r"\(it has step1, step2\)"):
        _sweep(tiny_world, tmp_path, tasks=[{"name": "tiny_mc", "revisions": "step4096"}])
    # a sweep made in code, never validated, is refused by the plan as well
    import dataclasses

    from harness.config import TaskSpec

    sweep = dataclasses.replace(_sweep(tiny_world, tmp_path), tasks=(TaskSpec("tiny_mc", revisions="step4096"),))
    with pytest.raises(UserError, match="which model lad does not list"):
        build_plan(sweep)
