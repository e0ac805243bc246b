"""Training one size of the zoo ladder: a small Llama, AdamW with warm-up and cosine decay, checkpoints.

This module exists for torch and transformers, so it imports them at the top; `harness.zoo.ladder`
imports it only inside the functions that build a ladder (listing a ladder needs neither).
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM


@dataclass(frozen=True)
class SizeSpec:
    """One rung of the ladder. Depth grows with width, as in Pythia; lr is tuned per size."""

    name: str
    d_model: int
    n_layers: int
    n_heads: int
    d_ffn: int
    lr: float


@dataclass(frozen=True)
class TrainConfig:
    seq_len: int = 256
    batch_size: int = 16
    warmup_steps: int = 50
    final_lr_fraction: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    # bf16 autocast nearly doubles the speed of the wider sizes on an idle CPU (44K vs 23K tok/s at
    # d=128) but costs accuracy; None = fp32 throughout (the committed ladder).
    autocast_min_width: int | None = None


def make_model(spec: SizeSpec, vocab_size: int, seq_len: int, eos_id: int, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=spec.d_model,
        intermediate_size=spec.d_ffn,
        num_hidden_layers=spec.n_layers,
        num_attention_heads=spec.n_heads,
        num_key_value_heads=spec.n_heads,
        max_position_embeddings=seq_len,
        tie_word_embeddings=True,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        initializer_range=0.02,
    )
    return LlamaForCausalLM(config)


def count_params(model: torch.nn.Module) -> tuple[int, int]:
    """(total, non-embedding); parameters() yields the tied embedding once."""
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    return total, total - embedding


def lr_at(step: int, total: int, peak: float, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return peak * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    floor = peak * cfg.final_lr_fraction
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _optimizer(model: torch.nn.Module, lr: float, cfg: TrainConfig) -> torch.optim.Optimizer:
    # Norm gains are not decayed: shrinking them towards zero only fights the normalisation.
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8)


@torch.no_grad()
def heldout_loss(model: torch.nn.Module, rows: np.ndarray, device: str) -> float:
    """Mean next-token loss (nats) over fixed rows of held-out text."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(rows), 16):
        batch = torch.from_numpy(rows[start : start + 16]).long().to(device)
        logits = model(input_ids=batch[:, :-1]).logits.float()
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1), reduction="sum")
        total += loss.item()
        count += batch[:, 1:].numel()
    model.train()
    return total / count


def save_checkpoint(model, tokenizer, folder: Path, step: int, tokens: int) -> None:
    """bf16 safetensors + tokenizer + harness.json, the layout `harness` resolves as revision step<N>."""
    folder.mkdir(parents=True, exist_ok=True)
    total, nonemb = count_params(model)
    copy.deepcopy(model).to(torch.bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    meta = {"tokens_trained": int(tokens), "n_params": int(total), "n_params_nonembedding": int(nonemb), "step": int(step)}
    (folder / "harness.json").write_text(json.dumps(meta, indent=1) + "\n")


def train_size(
    spec: SizeSpec,
    tokenizer,
    stream: np.ndarray,
    heldout_rows: np.ndarray,
    checkpoint_steps: list[int],
    out_dir: Path,
    seed: int,
    device: str = "cpu",
    cfg: TrainConfig = TrainConfig(),
    log: Callable[[str], None] = print,
    probe: Callable[[torch.nn.Module], dict] | None = None,
) -> list[dict]:
    """Train one size on the shared stream; save at each checkpoint step; return one record per checkpoint."""
    total_steps = max(checkpoint_steps)
    model = make_model(spec, len(tokenizer), cfg.seq_len, tokenizer.eos_token_id, seed).to(device)
    model.train()
    opt = _optimizer(model, spec.lr, cfg)
    records, started, recent = [], time.time(), []
    autocast = cfg.autocast_min_width is not None and spec.d_model >= cfg.autocast_min_width
    for step in range(total_steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total_steps, spec.lr, cfg)
        rows = stream[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        recent.append(_train_step(model, opt, rows, device, autocast, cfg.grad_clip))
        if (step + 1) in checkpoint_steps:
            tokens = (step + 1) * cfg.batch_size * cfg.seq_len
            save_checkpoint(model, tokenizer, out_dir / spec.name / f"step{step + 1}", step + 1, tokens)
            record = {"size": spec.name, "step": step + 1, "tokens": tokens, "train_loss": float(np.mean(recent[-50:])),
                      "heldout_loss": heldout_loss(model, heldout_rows, device), "seconds": round(time.time() - started, 1)}
            record.update(_probe_figures(model, probe))
            records.append(record)
            log(json.dumps(record))
    return records


def _train_step(
    model, opt: torch.optim.Optimizer, rows: np.ndarray, device: str, autocast: bool, grad_clip: float
) -> float:
    """One optimiser step of next-token loss on a batch of rows (seq_len + 1 ids each); returns the loss."""
    batch = torch.tensor(np.asarray(rows), dtype=torch.long, device=device)
    with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=autocast):
        logits = model(input_ids=batch[:, :-1]).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), batch[:, 1:].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.item()


def _probe_figures(model: torch.nn.Module, probe: Callable[[torch.nn.Module], dict] | None) -> dict:
    """The probe's figures, measured in eval mode (none without a probe)."""
    if probe is None:
        return {}
    model.eval()
    figures = probe(model)
    model.train()
    return figures
