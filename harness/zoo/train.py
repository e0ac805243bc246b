"""Training one size of the zoo ladder: a small Llama, AdamW with warm-up and a cosine or WSD schedule, checkpoints.

Two schedules. "cosine" (the first committed ladder): one run per size decays to its last checkpoint, so the
earlier checkpoints are mid-schedule snapshots, not runs trained for that many steps. "wsd"
(warmup-stable-decay): one constant-learning-rate run per size, and at each budget a cooldown branched
from it (Hägele et al. 2024, arXiv 2405.18392; as in MiniCPM and DeepSeek LLM 2024), so every
checkpoint is a finished schedule of exactly its budget: the points a Chinchilla L(N, D) fit needs.

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
    # Peak rate of the (tied) token embedding; None: lr. Under muP (Yang et al. 2022) the embedding's
    # rate does not shrink with width as the hidden matrices' does; at 1/width a wide model spent its
    # first ~1M tokens relearning unigram and bigram statistics that a narrow one learned at once.
    embedding_lr: float | None = None


SCHEDULES = ("cosine", "wsd")


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
    schedule: str = "cosine"  # one of SCHEDULES; the ladders (ladder.py) ask for wsd
    # WSD: the last fraction of each budget's steps is its cooldown. Hägele et al. 2024 find 10-20%
    # enough to match a cosine run of the same length.
    cooldown_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule {self.schedule!r}: expected one of {', '.join(SCHEDULES)}")
        if not 0 < self.cooldown_fraction < 1:
            raise ValueError(f"cooldown fraction {self.cooldown_fraction}: expected a number between 0 and 1")


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
        return stable_lr_at(step, peak, cfg)  # the same linear warm-up
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    floor = peak * cfg.final_lr_fraction
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def stable_lr_at(step: int, peak: float, cfg: TrainConfig) -> float:
    """WSD before any cooldown: the cosine's linear warm-up, then the peak for as long as the run lasts."""
    if step < cfg.warmup_steps:
        return peak * (step + 1) / cfg.warmup_steps
    return peak


def cooldown_start(budget: int, cfg: TrainConfig) -> int:
    """Step s_k = (1 - cooldown_fraction) * budget, rounded down, where a WSD budget's cooldown begins.

    The 1e-9 keeps float error from moving it a step (0.7 * 10 is 7.000000000000001, 0.9 * 10 may fall
    just short of 9). A cooldown that would begin inside the warm-up is refused: that run has no stable phase.
    """
    start = math.floor((1 - cfg.cooldown_fraction) * budget + 1e-9)
    if start < cfg.warmup_steps or start >= budget:
        raise ValueError(f"budget of {budget} steps: its cooldown would start at step {start}, before the end of "
                         f"the {cfg.warmup_steps}-step warm-up; use larger budgets or a smaller cooldown fraction")
    return start


def wsd_lr_at(step: int, budget: int, peak: float, cfg: TrainConfig) -> float:
    """Learning rate of step `step` (0-based) in a WSD run of `budget` steps.

    The cooldown is 1 - sqrt, which Hägele et al. 2024 (Sec. 3) found better than a linear one of the
    same length; it ends at final_lr_fraction * peak on the budget's last step (budget - 1), so the
    run is finished exactly at its budget. Before the cooldown it equals stable_lr_at.
    """
    start = cooldown_start(budget, cfg)
    if step < start:
        return stable_lr_at(step, peak, cfg)
    floor = peak * cfg.final_lr_fraction
    progress = min(1.0, (step + 1 - start) / (budget - start))
    return floor + (peak - floor) * (1 - math.sqrt(progress))


def _optimizer(model: torch.nn.Module, lr: float, cfg: TrainConfig, embedding_scale: float = 1.0) -> torch.optim.Optimizer:
    """AdamW; with embedding_scale != 1 the token embedding is its own group, whose rate is the
    schedule's times `lr_scale` (_Run sets every group's rate from the schedule, times its scale)."""
    # Norm gains are not decayed: shrinking them towards zero only fights the normalisation.
    embedding = model.get_input_embeddings().weight if embedding_scale != 1.0 else None
    decay = [p for p in model.parameters() if p.dim() >= 2 and p is not embedding]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if embedding is not None:
        groups.append({"params": [embedding], "weight_decay": cfg.weight_decay, "lr_scale": embedding_scale})
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8)


def embedding_scale(spec: SizeSpec) -> float:
    """The embedding's rate over the hidden matrices' (1 when the size gives no embedding_lr)."""
    return 1.0 if spec.embedding_lr is None else spec.embedding_lr / spec.lr


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


def save_checkpoint(model, tokenizer, folder: Path, step: int, tokens: int, schedule: dict | None = None) -> None:
    """bf16 safetensors + tokenizer + harness.json, the layout `harness` resolves as revision step<N>."""
    folder.mkdir(parents=True, exist_ok=True)
    total, nonemb = count_params(model)
    copy.deepcopy(model).to(torch.bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    meta = {"tokens_trained": int(tokens), "n_params": int(total), "n_params_nonembedding": int(nonemb), "step": int(step)}
    meta.update(schedule or {})
    (folder / "harness.json").write_text(json.dumps(meta, indent=1) + "\n")


def schedule_meta(cfg: TrainConfig, step: int, budget: int) -> dict:
    """What harness.json says about the schedule behind a checkpoint taken at `step`.

    budget_steps is the length of the schedule the weights come from (cosine: the last checkpoint);
    finished_schedule is true only when the learning rate had decayed fully at that step, i.e. every
    WSD checkpoint and the cosine's last one: only those are valid points of an L(N, D) fit.
    """
    wsd = cfg.schedule == "wsd"
    return {"schedule": cfg.schedule, "budget_steps": int(budget), "warmup_steps": cfg.warmup_steps,
            "cooldown_start_step": cooldown_start(budget, cfg) if wsd else None,
            "cooldown": "1-sqrt" if wsd else "cosine", "finished_schedule": step == budget}


@dataclass(frozen=True)
class _Checkpointer:
    """Saves a checkpoint and measures it: what train_size needs at every checkpoint, whatever the schedule."""

    spec: SizeSpec
    tokenizer: object
    heldout_rows: np.ndarray
    out_dir: Path
    device: str
    cfg: TrainConfig
    log: Callable[[str], None]
    probe: Callable[[torch.nn.Module], dict] | None
    started: float

    def __call__(self, model: torch.nn.Module, step: int, budget: int, losses: list[float]) -> dict:
        tokens = step * self.cfg.batch_size * self.cfg.seq_len
        meta = {**schedule_meta(self.cfg, step, budget), "peak_lr": self.spec.lr,
                "embedding_peak_lr": self.spec.embedding_lr or self.spec.lr}
        save_checkpoint(model, self.tokenizer, self.out_dir / self.spec.name / f"step{step}", step, tokens, meta)
        record = {"size": self.spec.name, "step": step, "tokens": tokens, "train_loss": float(np.mean(losses[-50:])),
                  "heldout_loss": heldout_loss(model, self.heldout_rows, self.device),
                  "seconds": round(time.time() - self.started, 1)}
        record.update(_probe_figures(model, self.probe))
        record.update(schedule=meta["schedule"], finished_schedule=meta["finished_schedule"])
        self.log(json.dumps(record))
        return record


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
    """Train one size on the shared stream; save at each checkpoint step; return one record per checkpoint.

    With cfg.schedule "wsd" the checkpoint steps are the budgets, each a cooldown branched from the stable run.
    """
    model = make_model(spec, len(tokenizer), cfg.seq_len, tokenizer.eos_token_id, seed).to(device)
    model.train()
    opt = _optimizer(model, spec.lr, cfg, embedding_scale(spec))
    autocast = cfg.autocast_min_width is not None and spec.d_model >= cfg.autocast_min_width
    run = _Run(stream, cfg, device, autocast)
    save = _Checkpointer(spec, tokenizer, heldout_rows, out_dir, device, cfg, log, probe, time.time())
    records: list[dict] = []
    if cfg.schedule == "wsd":
        train_wsd(model, opt, run, checkpoint_steps, spec.lr,
                  lambda branch, budget, losses: records.append(save(branch, budget, budget, losses)))
        return records
    total_steps, done, losses = max(checkpoint_steps), 0, []
    for stop in sorted(set(checkpoint_steps)):
        losses += run(model, opt, range(done, stop), lambda step: lr_at(step, total_steps, spec.lr, cfg))
        done = stop
        records.append(save(model, stop, total_steps, losses))
    return records


@dataclass(frozen=True)
class _Run:
    """Trains a model on the shared stream. Step s always reads rows [s * batch, (s + 1) * batch), so a
    step's data depends on its index only: a WSD branch sees what a run from scratch would at that step."""

    stream: np.ndarray
    cfg: TrainConfig
    device: str
    autocast: bool

    def __call__(self, model, opt: torch.optim.Optimizer, steps: range, lr: Callable[[int], float]) -> list[float]:
        losses = []
        for step in steps:
            for group in opt.param_groups:
                group["lr"] = lr(step) * group.get("lr_scale", 1.0)
            rows = self.stream[step * self.cfg.batch_size : (step + 1) * self.cfg.batch_size]
            losses.append(_train_step(model, opt, rows, self.device, self.autocast, self.cfg.grad_clip))
        return losses


def train_wsd(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    run: _Run,
    budgets: list[int],
    peak: float,
    on_branch: Callable[[torch.nn.Module, int, list[float]], None],
) -> list[float]:
    """WSD: the stable run up to each budget's cooldown start s_k, a cooldown branch to the budget, repeat.

    Each branch starts from a copy of the model and of the AdamW state at s_k and cools down on the
    steps s_k .. budget - 1 of the stream, so it is the run a WSD schedule of that budget would train
    from scratch; `on_branch(branch, budget, losses)` gets it, then it is dropped (one branch in memory
    at a time) and the stable run goes on from its own state. The stable run stops at the last s_k:
    nothing after it is used. Returns the stable run's losses; `model` is left at the last s_k.
    """
    cfg, losses, done = run.cfg, [], 0
    starts = {budget: cooldown_start(budget, cfg) for budget in sorted(set(budgets))}  # refuse bad budgets up front
    for budget, start in starts.items():
        losses += run(model, opt, range(done, start), lambda step: stable_lr_at(step, peak, cfg))
        done = start
        branch, branch_opt = _fork(model, opt, cfg)
        tail = run(branch, branch_opt, range(start, budget), lambda step, b=budget: wsd_lr_at(step, b, peak, cfg))
        on_branch(branch, budget, losses + tail)
        del branch, branch_opt
    return losses


def _fork(model: torch.nn.Module, opt: torch.optim.Optimizer, cfg: TrainConfig):
    """An independent copy of the model and its optimiser (AdamW moments and step count).

    The state dict is deep-copied because load_state_dict keeps tensors that already have the right
    dtype and device: without the copy the branch would update the stable run's moments in place.
    """
    branch = copy.deepcopy(model)
    scale = next((g["lr_scale"] for g in opt.param_groups if "lr_scale" in g), 1.0)  # the embedding's group
    branch_opt = _optimizer(branch, opt.param_groups[0]["lr"], cfg, scale)
    branch_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    return branch, branch_opt


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
