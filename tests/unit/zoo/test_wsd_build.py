"""`harness zoo build --schedule wsd --cooldown-fraction F --budgets ... --sizes ...`: the ladder it
builds, the jobs it sends, what it refuses, and a tiny WSD build end to end."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from harness.errors import UserError
from harness.zoo import ladder as ladder_mod
from harness.zoo.design import IsoflopDesign
from harness.zoo.ladder import CPU_LADDER, CUDA_LADDER, Ladder, recipe


def _parse(*argv: str) -> argparse.Namespace:
    from harness.cli import zoo as cli_zoo

    parser = argparse.ArgumentParser()
    cli_zoo.register(parser.add_subparsers())
    return parser.parse_args(["zoo", "build", *argv])


def _built_ladder(monkeypatch, *argv: str) -> Ladder:
    seen = {}
    monkeypatch.setattr(ladder_mod, "build", lambda out, **kwargs: seen.update(kwargs) or [])
    args = _parse(*argv)
    assert args.func(args) == 0
    return seen["ladder"]


def test_default_build_is_the_committed_wsd_recipe(monkeypatch):
    assert _built_ladder(monkeypatch) == CPU_LADDER
    assert CPU_LADDER.schedule == "wsd" and CPU_LADDER.warmup_steps == 50 and CPU_LADDER.cooldown_fraction == 0.2
    assert CPU_LADDER.design == IsoflopDesign() and CPU_LADDER.total_steps == max(CPU_LADDER.checkpoint_steps())
    assert CPU_LADDER.checkpoint_steps(CPU_LADDER.sizes[0])[:2] == [196, 349]  # zoo-1's own budgets
    assert recipe("cuda") == CUDA_LADDER and CUDA_LADDER.design is None


def test_cosine_trains_the_first_ladder_recipe(monkeypatch):
    """`--schedule cosine` gives the first committed ladder's per-size rates, every parameter at one rate."""
    ladder = _built_ladder(monkeypatch, "--schedule", "cosine")
    assert ladder.schedule == "cosine"
    assert [(s["name"], s["lr"]) for s in ladder.sizes] == [("zoo-1", 1e-2), ("zoo-2", 1e-2), ("zoo-3", 1.2e-2),
                                                             ("zoo-4", 8e-3), ("zoo-5", 1.2e-2)]
    assert all("embedding_lr" not in s for s in ladder.sizes)
    assert [s["d_model"] for s in ladder.sizes] == [s["d_model"] for s in CPU_LADDER.sizes]
    # one schedule per size of the first ladder's length, checkpoints along it: no IsoFLOP design
    assert ladder.design is None and ladder.checkpoint_steps(ladder.sizes[0]) == [256, 512, 1024, 2048, 4096]
    assert recipe("cuda", "cosine").total_steps == CUDA_LADDER.total_steps  # the GPU ladder keeps its length


def test_wsd_flags_reach_the_ladder(monkeypatch):
    ladder = _built_ladder(monkeypatch, "--schedule", "wsd", "--cooldown-fraction", "0.1",
                           "--budgets", "1024,64,128,256,512", "--sizes", "zoo-5,zoo-1")
    assert (ladder.schedule, ladder.cooldown_fraction) == ("wsd", 0.1)
    assert ladder.checkpoint_steps() == [64, 128, 256, 512, 1024] and ladder.total_steps == 1024
    assert [s["name"] for s in ladder.sizes] == ["zoo-1", "zoo-5"]
    assert ladder.design is None and ladder.checkpoint_steps(ladder.sizes[1]) == [64, 128, 256, 512, 1024]
    assert dataclasses.replace(ladder, cooldown_fraction=0.2, budgets=None, sizes=CPU_LADDER.sizes).with_design(
        IsoflopDesign()) == CPU_LADDER  # nothing else moved


def test_sizes_keep_their_design_budgets(monkeypatch):
    ladder = _built_ladder(monkeypatch, "--sizes", "zoo-5,zoo-3")
    assert ladder.steps_by_size() == {k: v for k, v in CPU_LADDER.steps_by_size().items() if k in ("zoo-3", "zoo-5")}
    assert ladder.total_steps == max(ladder.steps_by_size()["zoo-3"])  # the stream reaches the chosen sizes' longest


def test_design_jobs_carry_each_sizes_budgets(monkeypatch, tmp_path):
    jobs = _jobs(monkeypatch, tmp_path, CPU_LADDER)
    assert {job.size.name: list(job.checkpoint_steps) for job in jobs} == CPU_LADDER.steps_by_size()


def _jobs(monkeypatch, tmp_path, ladder, streams=None):
    import harness.zoo.corpus

    jobs, streams = [], [] if streams is None else streams
    monkeypatch.setattr(harness.zoo.corpus, "english_documents", lambda: ([], []))
    monkeypatch.setattr(ladder_mod, "_write_tokenizer", lambda *a, **k: None)
    monkeypatch.setattr(ladder_mod, "_write_stream", lambda work, tok, docs, ladder, *a: streams.append(ladder))
    monkeypatch.setattr(ladder_mod, "_write_heldout", lambda *a, **k: None)
    monkeypatch.setattr(ladder_mod, "_run_train_jobs", lambda js, *a, **k: jobs.extend(js) or [])
    ladder_mod.build(tmp_path / "zoo", ladder=ladder, workers=2, log=lambda _: None)
    return jobs


def test_wsd_jobs_carry_the_schedule(monkeypatch, tmp_path):
    streams = []
    jobs = _jobs(monkeypatch, tmp_path, recipe("cpu", "wsd", 0.2, (64, 128, 256, 512, 1024)), streams)
    assert len(jobs) == 5 and streams[0].total_steps == 1024  # the stream reaches the largest budget
    for job in jobs:
        assert job.checkpoint_steps == (64, 128, 256, 512, 1024)
        cfg = job.train_config
        assert (cfg.schedule, cfg.cooldown_fraction, cfg.warmup_steps, cfg.batch_size) == ("wsd", 0.2, 50, 8)


@pytest.mark.parametrize("argv, message", [
    (("--schedule", "wsd", "--budgets", "16,32,64"), "warm-up"),  # 16 steps cannot hold 50 of warm-up
    (("--schedule", "wsd", "--cooldown-fraction", "1.5"), "cooldown fraction"),
    (("--sizes", "zoo-9"), "zoo-9"),
])
def test_bad_recipes_are_refused_before_any_work(argv, message, tmp_path):
    args = _parse("--out", str(tmp_path / "zoo"), *argv)
    with pytest.raises(UserError, match=message):
        args.func(args)
    assert not (tmp_path / "zoo").exists()


def test_budgets_must_be_whole_positive_steps():
    for text in ("0,64", "64,x"):
        with pytest.raises(SystemExit):
            _parse("--budgets", text)
    with pytest.raises(ValueError, match="total_steps"):
        Ladder(sizes=(), total_steps=4096, budgets=(64, 128))


@pytest.mark.slow
def test_a_tiny_wsd_build_writes_finished_schedules(tmp_path):
    import torch

    from harness.zoo.ladder import build, list_ladder

    tiny = Ladder(sizes=(dict(name="tiny-a", d_model=16, n_layers=1, n_heads=2, d_ffn=32, lr=1e-2),),
                  total_steps=8, batch_size=2, seq_len=32, vocab_size=300, english_docs=20,
                  schedule="wsd", warmup_steps=1, cooldown_fraction=0.25).with_budgets((2, 4, 8))
    before = torch.get_num_threads()
    try:
        records = build(tmp_path, seed=3, ladder=tiny, threads=1, probe=False, log=lambda _: None)
    finally:
        torch.set_num_threads(before)
    assert [(r["step"], r["finished_schedule"]) for r in records] == [(2, True), (4, True), (8, True)]
    assert [r["revision"] for r in list_ladder(tmp_path)] == ["step2", "step4", "step8"]
    meta = json.loads((tmp_path / "tiny-a" / "step8" / "harness.json").read_text())
    assert (meta["schedule"], meta["budget_steps"], meta["cooldown_start_step"], meta["tokens_trained"]) == (
        "wsd", 8, 6, 8 * 2 * 32)
