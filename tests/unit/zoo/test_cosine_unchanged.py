"""The cosine schedule (the recipe of the first committed ladder, kept as `--schedule cosine`) trains exactly as it did before WSD existed.

`_legacy_train` is a frozen copy of the trainer as it stood before the schedule option (model,
optimiser, learning rate, step, checkpoint loop); today's `train_size` must give the same learning
rates, losses and bf16 weights to the last bit, for the same seed and stream.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.zoo.train import SizeSpec, TrainConfig, heldout_loss, lr_at, train_size

SPEC = SizeSpec("t", d_model=16, n_layers=1, n_heads=2, d_ffn=32, lr=1e-2)
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/zoo/conftest.py
CFG = TrainConfig(seq_len=16, batch_size=4, warmup_steps=3)
STEPS = [3, 6, 12]
# lr_at(step, 12, 1e-2, CFG) for steps 0..11, printed by the code before the change
LRS_BEFORE = [0.0033333333333333335, 0.006666666666666667, 0.01, 0.010000000000000002, 0.00972861679353659,
              0.008947199994035402, 0.007750000000000001, 0.006281416799501188, 0.004718583200498814,
              0.003250000000000001, 0.0020528000059645995, 0.0012713832064634126]


def _legacy_lr(step: int, total: int, peak: float, warmup: int = 3, final: float = 0.1) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    floor = peak * final
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _legacy_model(vocab: int, eos: int, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=16,
                         tie_word_embeddings=True, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
                         initializer_range=0.02)
    return LlamaForCausalLM(config)


def _legacy_train(vocab: int, eos: int, stream: np.ndarray, seed: int) -> dict[int, tuple[dict, float]]:
    """The pre-WSD loop: fp32 weights and mean recent loss at each checkpoint step."""
    model = _legacy_model(vocab, eos, seed)
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=SPEC.lr, betas=(0.9, 0.95), eps=1e-8)
    out, recent = {}, []
    for step in range(max(STEPS)):
        for group in opt.param_groups:
            group["lr"] = _legacy_lr(step, max(STEPS), SPEC.lr)
        batch = torch.tensor(np.asarray(stream[step * 4 : (step + 1) * 4]), dtype=torch.long)
        logits = model(input_ids=batch[:, :-1]).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent.append(loss.item())
        if step + 1 in STEPS:
            out[step + 1] = ({k: v.detach().clone() for k, v in model.state_dict().items()}, float(np.mean(recent[-50:])))
    return out


def test_cosine_learning_rates_are_unchanged():
    assert [lr_at(step, 12, SPEC.lr, CFG) for step in range(12)] == [_legacy_lr(step, 12, SPEC.lr) for step in range(12)]
    assert [lr_at(step, 12, SPEC.lr, CFG) for step in range(12)] == pytest.approx(LRS_BEFORE, rel=1e-12, abs=0)
    assert TrainConfig().schedule == "cosine"  # a bare TrainConfig trains as before; the ladders ask for wsd


def test_cosine_training_is_bitwise_the_pre_wsd_trainer(tmp_path):
    from safetensors.torch import load_file

    from harness.zoo.data import train_tokenizer

    tok = train_tokenizer(["hello world 123 the quick brown fox"] * 20, 300)
    rng = np.random.default_rng(0)
    stream = rng.integers(0, len(tok), size=(4 * 12, 17)).astype(np.int32)
    held = rng.integers(0, len(tok), size=(4, 17)).astype(np.int32)
    records = train_size(SPEC, tok, stream, held, STEPS, tmp_path, 5, "cpu", CFG, log=lambda _: None)
    legacy = _legacy_train(len(tok), tok.eos_token_id, stream, 5)
    assert [r["step"] for r in records] == STEPS
    for record in records:
        weights, train_loss = legacy[record["step"]]
        assert record["train_loss"] == train_loss
        saved = load_file(tmp_path / "t" / f"step{record['step']}" / "model.safetensors")
        for key, value in saved.items():
            assert torch.equal(value, weights[key].to(torch.bfloat16)), (record["step"], key)
        # the fp32 weights themselves, through a loss that reads every one of them
        model = _legacy_model(len(tok), tok.eos_token_id, 0)
        model.load_state_dict(weights)
        assert record["heldout_loss"] == heldout_loss(model, held, "cpu")
