"""Warmup-stable-decay in the zoo trainer: every checkpoint is a finished schedule of its budget.

The property that matters (Hägele et al. 2024): a cooldown branched from the stable run at s_k is
the same run as one trained from scratch with a WSD schedule ending at budget k, and taking branches
leaves the stable run untouched. Tiny model, 16 steps of 4 x 16 tokens, one torch thread.
"""

from __future__ import annotations

import gc
import json
import math
import weakref

import numpy as np
import pytest
import torch

from harness.zoo.train import (SizeSpec, TrainConfig, _optimizer, _Run, cooldown_start, make_model, stable_lr_at,
                               train_size, train_wsd, wsd_lr_at)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/zoo/conftest.py
SPEC = SizeSpec("t", d_model=16, n_layers=1, n_heads=2, d_ffn=32, lr=1e-2)
CFG = TrainConfig(seq_len=16, batch_size=4, warmup_steps=2, schedule="wsd", cooldown_fraction=0.25)
BUDGETS = [4, 8, 16]  # cooldowns start at 3, 6 and 12
VOCAB = 64


def _stream(steps: int = max(BUDGETS)) -> np.ndarray:
    return np.random.default_rng(0).integers(0, VOCAB, size=(steps * CFG.batch_size, CFG.seq_len + 1)).astype(np.int32)


def _fresh(seed: int = 1):
    model = make_model(SPEC, VOCAB, CFG.seq_len, 0, seed)
    model.train()
    return model, _optimizer(model, SPEC.lr, CFG)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def _branches(stream: np.ndarray) -> tuple[dict[int, tuple[dict, list[float]]], torch.nn.Module, torch.optim.Optimizer, list[float]]:
    """Run WSD over BUDGETS; the branches' weights and losses by budget, and the stable run as it ends."""
    model, opt = _fresh()
    branches: dict[int, tuple[dict, list[float]]] = {}
    stable = train_wsd(model, opt, _Run(stream, CFG, "cpu", False), BUDGETS, SPEC.lr,
                       lambda branch, budget, losses: branches.__setitem__(budget, (_weights(branch), losses)))
    return branches, model, opt, stable


def test_each_branch_is_the_wsd_run_of_its_budget_from_scratch():
    stream = _stream()
    branches, _, _, _ = _branches(stream)
    assert sorted(branches) == BUDGETS
    for budget in BUDGETS:
        scratch, opt = _fresh()
        losses = _Run(stream, CFG, "cpu", False)(scratch, opt, range(budget),
                                                 lambda step: wsd_lr_at(step, budget, SPEC.lr, CFG))
        _assert_same(branches[budget][0], _weights(scratch))
        assert branches[budget][1] == losses  # the loss of every step, stable part and cooldown
    # the cooldown did something: a branch is not the stable run at its budget
    stable_at_8, opt = _fresh()
    _Run(stream, CFG, "cpu", False)(stable_at_8, opt, range(8), lambda step: stable_lr_at(step, SPEC.lr, CFG))
    assert not torch.equal(branches[8][0]["model.norm.weight"], stable_at_8.state_dict()["model.norm.weight"])


def test_the_stable_run_goes_on_as_if_no_branch_was_taken():
    stream = _stream()
    _, model, opt, stable_losses = _branches(stream)
    plain, plain_opt = _fresh()
    last_start = cooldown_start(max(BUDGETS), CFG)
    losses = _Run(stream, CFG, "cpu", False)(plain, plain_opt, range(last_start),
                                             lambda step: stable_lr_at(step, SPEC.lr, CFG))
    assert stable_losses == losses and len(losses) == last_start == 12
    _assert_same(_weights(model), _weights(plain))
    # the AdamW moments and step count too: the next stable step would be the same
    for mine, theirs in zip(opt.state.values(), plain_opt.state.values()):
        for key in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(mine[key], theirs[key], rtol=0, atol=0)


def test_one_branch_lives_at_a_time():
    alive: list[weakref.ref] = []

    def on_branch(branch, budget, losses):
        gc.collect()
        assert all(ref() is None for ref in alive), "an earlier branch is still in memory"
        alive.append(weakref.ref(branch))

    model, opt = _fresh()
    train_wsd(model, opt, _Run(_stream(), CFG, "cpu", False), BUDGETS, SPEC.lr, on_branch)
    assert len(alive) == len(BUDGETS)


def test_the_schedule_warms_up_stays_flat_and_cools_down_to_the_floor_at_the_budget():
    cfg = TrainConfig(warmup_steps=50, schedule="wsd", cooldown_fraction=0.2, final_lr_fraction=0.1)
    peak, budget = 1e-2, 256
    start = cooldown_start(budget, cfg)
    assert start == 204
    lrs = [wsd_lr_at(step, budget, peak, cfg) for step in range(budget)]
    assert lrs[:50] == [peak * (step + 1) / 50 for step in range(50)]  # linear warm-up to the peak
    assert lrs[49] == peak and set(lrs[50:start]) == {peak}  # stable
    cooldown = lrs[start:]
    assert all(a > b for a, b in zip(cooldown, cooldown[1:])) and cooldown[0] < peak
    assert lrs[-1] == peak * 0.1  # exactly the floor on the budget's last step
    # 1 - sqrt: a quarter of the way into the cooldown, half of (peak - floor) is gone
    assert lrs[start + 13 - 1] == pytest.approx(peak * 0.1 + peak * 0.9 * (1 - math.sqrt(13 / 52)), rel=1e-12)
    assert lrs[start + 13 - 1] == pytest.approx(peak * 0.1 + peak * 0.9 * 0.5, rel=1e-12)
    # before its cooldown every budget follows the stable run
    for other in (64, 128, 512, 1024):
        s = cooldown_start(other, cfg)
        assert [wsd_lr_at(step, other, peak, cfg) for step in range(s)] == [stable_lr_at(step, peak, cfg) for step in range(s)]


def test_cooldown_starts_are_exact_and_never_inside_the_warmup():
    cfg = TrainConfig(warmup_steps=50, schedule="wsd", cooldown_fraction=0.2)
    assert [cooldown_start(b, cfg) for b in (64, 128, 256, 512, 1024, 4096)] == [51, 102, 204, 409, 819, 3276]
    assert cooldown_start(10, TrainConfig(warmup_steps=1, cooldown_fraction=0.1)) == 9  # 0.9 * 10 in floats
    assert cooldown_start(10, TrainConfig(warmup_steps=1, cooldown_fraction=0.3)) == 7
    with pytest.raises(ValueError, match="warm-up"):
        cooldown_start(62, cfg)  # would start at 49, inside the 50-step warm-up
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="cooldown fraction"):
        TrainConfig(cooldown_fraction=1.0)


def _tokenizer():
    from harness.zoo.data import train_tokenizer

    return train_tokenizer(["the quick brown fox 12 + 34 = 46"] * 20, VOCAB)


def test_harness_json_says_which_checkpoints_are_finished_schedules(tmp_path):
    from safetensors.torch import load_file

    tok = _tokenizer()
    stream = np.random.default_rng(0).integers(0, len(tok), size=(16 * 4, 17)).astype(np.int32)
    held = stream[:4]
    for schedule in ("wsd", "cosine"):
        cfg = TrainConfig(seq_len=16, batch_size=4, warmup_steps=2, schedule=schedule, cooldown_fraction=0.25)
        records = train_size(SPEC, tok, stream, held, BUDGETS, tmp_path / schedule, 1, cfg=cfg, log=lambda _: None)
        assert [(r["step"], r["schedule"], r["finished_schedule"]) for r in records] == [
            (b, schedule, schedule == "wsd" or b == 16) for b in BUDGETS]
        for budget in BUDGETS:
            meta = json.loads((tmp_path / schedule / "t" / f"step{budget}" / "harness.json").read_text())
            assert meta["step"] == budget and meta["tokens_trained"] == budget * 4 * 16
            assert meta["schedule"] == schedule and meta["warmup_steps"] == 2
            if schedule == "wsd":
                assert meta["budget_steps"] == budget and meta["finished_schedule"] is True
                assert meta["cooldown_start_step"] == {4: 3, 8: 6, 16: 12}[budget] and meta["cooldown"] == "1-sqrt"
            else:
                assert meta["budget_steps"] == 16 and meta["cooldown_start_step"] is None
                assert meta["finished_schedule"] is (budget == 16)
    # what lies on disk for budget 8 is the from-scratch WSD run of 8 steps, in bf16
    scratch = make_model(SPEC, len(tok), 16, tok.eos_token_id, 1)
    _Run(stream, CFG, "cpu", False)(scratch, _optimizer(scratch, SPEC.lr, CFG), range(8),
                                    lambda step: wsd_lr_at(step, 8, SPEC.lr, CFG))
    saved = load_file(tmp_path / "wsd" / "t" / "step8" / "model.safetensors")
    for key, value in saved.items():
        assert torch.equal(value, scratch.state_dict()[key].to(torch.bfloat16)), key
