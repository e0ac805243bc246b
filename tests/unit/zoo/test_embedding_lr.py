"""The token embedding's own learning rate (SizeSpec.embedding_lr): width-independent, as muP has it,
while the hidden matrices' rate shrinks as 1 / width. Tiny model, one torch thread."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.zoo.ladder import CPU_LADDER, CUDA_LADDER, EMBEDDING_LR, LR_TIMES_WIDTH
from harness.zoo.train import (SizeSpec, TrainConfig, _optimizer, _Run, embedding_scale, make_model, train_wsd,
                               wsd_lr_at)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/zoo/conftest.py
SPEC = SizeSpec("t", d_model=16, n_layers=1, n_heads=2, d_ffn=32, lr=1e-2, embedding_lr=4e-2)
CFG = TrainConfig(seq_len=16, batch_size=4, warmup_steps=2, schedule="wsd", cooldown_fraction=0.25)
VOCAB = 64


def _stream(steps: int = 16) -> np.ndarray:
    return np.random.default_rng(0).integers(0, VOCAB, size=(steps * CFG.batch_size, CFG.seq_len + 1)).astype(np.int32)


def _fresh(spec: SizeSpec = SPEC):
    model = make_model(spec, VOCAB, CFG.seq_len, 0, 1)
    model.train()
    return model, _optimizer(model, spec.lr, CFG, embedding_scale(spec))


def test_the_embedding_follows_the_schedule_at_its_own_rate():
    model, opt = _fresh()
    embedding = model.get_input_embeddings().weight
    groups = {id(p): g for g in opt.param_groups for p in g["params"]}
    assert groups[id(embedding)]["lr_scale"] == pytest.approx(4.0)
    assert sum(p is embedding for g in opt.param_groups for p in g["params"]) == 1  # in one group only
    seen = []
    run = _Run(_stream(), CFG, "cpu", False)
    for step in range(3):
        run(model, opt, range(step, step + 1), lambda s: wsd_lr_at(s, 16, SPEC.lr, CFG))
        seen.append({id(p): g["lr"] for g in opt.param_groups for p in g["params"]})
    for step, rates in enumerate(seen):
        base = wsd_lr_at(step, 16, SPEC.lr, CFG)
        assert rates[id(embedding)] == pytest.approx(4 * base)
        assert all(rate == base for key, rate in rates.items() if key != id(embedding))


def test_a_branch_keeps_the_embedding_rate():
    """A WSD branch (a copy of model and optimiser) trains as a run from scratch with the same rates."""
    stream = _stream()
    model, opt = _fresh()
    branches = {}
    train_wsd(model, opt, _Run(stream, CFG, "cpu", False), [8, 16], SPEC.lr,
              lambda branch, budget, losses: branches.__setitem__(budget, {k: v.clone() for k, v in
                                                                           branch.state_dict().items()}))
    scratch, scratch_opt = _fresh()
    _Run(stream, CFG, "cpu", False)(scratch, scratch_opt, range(8), lambda s: wsd_lr_at(s, 8, SPEC.lr, CFG))
    for key, value in scratch.state_dict().items():
        torch.testing.assert_close(branches[8][key], value, rtol=0, atol=0, msg=key)


def test_no_embedding_rate_keeps_the_two_groups_of_before():
    plain = SizeSpec("t", d_model=16, n_layers=1, n_heads=2, d_ffn=32, lr=1e-2)
    same = SizeSpec("t", d_model=16, n_layers=1, n_heads=2, d_ffn=32, lr=1e-2, embedding_lr=1e-2)
    for spec in (plain, same):
        assert embedding_scale(spec) == 1.0
        _, opt = _fresh(spec)
        assert len(opt.param_groups) == 2 and all("lr_scale" not in g for g in opt.param_groups)


@pytest.mark.parametrize("ladder", [CPU_LADDER, CUDA_LADDER], ids=["cpu", "cuda"])
def test_ladder_rates_shrink_with_width_but_the_embeddings_do_not(ladder):
    assert ladder.schedule == "wsd"
    for size in ladder.sizes:
        assert size["lr"] * size["d_model"] == pytest.approx(LR_TIMES_WIDTH)
        assert size["embedding_lr"] == EMBEDDING_LR
