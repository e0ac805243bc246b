"""Run planned rows through a causal LM and sum the log-probabilities of their targets.

Only the positions that are scored go through the output head and the log-softmax (lm-eval's HF
backend pays for the head and a full-vocabulary log-softmax on every position, context included).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from harness.backends.fast.pack import Row

# Positions sent through the output head at once: bounds the [positions, vocab] logits in memory;
# 1024 ran 20% faster than 4096 on this CPU (vocabulary 1024: 4 MB of fp32 logits per chunk, not 16 MB).
HEAD_CHUNK = 1024


@dataclass(frozen=True)
class ModelParts:
    """How to call a model: its trunk and head separately when that is proven equal to a full call.

    mask: "bool" (SDPA takes a boolean keep-mask), "float" (eager adds 0 / -inf), or None when
    custom 4-D masks are not trusted for this model (then rows hold one request each, right-padded,
    and the model's own causal mask is used, exactly as lm-eval's HF backend does).
    """

    model: torch.nn.Module
    trunk: torch.nn.Module | None
    head: torch.nn.Module | None
    mask: str | None


def row_tensors(rows: Sequence[Row], pad_id: int, device: torch.device, mask: str | None, dtype: torch.dtype):
    """input ids, position ids and the 4-D attention mask ([B, 1, T, T]) of a batch of rows."""
    width = max(len(r.tokens) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    unit = torch.empty((len(rows), width), dtype=torch.long)
    branch = torch.ones((len(rows), width), dtype=torch.long)
    part = torch.ones((len(rows), width), dtype=torch.long)
    for b, r in enumerate(rows):
        n = len(r.tokens)
        ids[b, :n] = torch.tensor(r.tokens)
        pos[b, :n] = torch.tensor(r.positions)
        unit[b, :n] = torch.tensor(r.unit)
        branch[b, :n] = torch.tensor(r.branch)
        part[b, :n] = torch.tensor(r.part)
        # Padding: every pad position is a unit of its own that sees only itself, so no query row
        # is fully masked (that would give NaN in SDPA and leak through the values of later layers).
        unit[b, n:] = -1 - torch.arange(width - n)
    if mask is None or all(len(set(r.unit)) == 1 and max(r.part) <= 1 and max(r.branch) <= 1 for r in rows):
        # One request per row (prefix + one tail, or one tail): the model's own causal mask and
        # default positions are exact, and SDPA can take its faster is_causal path.
        return ids.to(device), None, None
    same_unit = unit[:, :, None] == unit[:, None, :]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    # k is visible from q: a root token, or in q's branch and either a body token or in q's tail.
    same_branch = branch[:, :, None] == branch[:, None, :]
    in_body_or_own_tail = (part[:, None, :] == 0) | (part[:, :, None] == part[:, None, :])
    visible = (branch[:, None, :] == 0) | (same_branch & in_body_or_own_tail)
    keep = (same_unit & causal & visible)[:, None]
    if mask == "float":
        keep = torch.zeros(keep.shape, dtype=dtype).masked_fill(~keep, torch.finfo(dtype).min)
    return ids.to(device), pos.to(device), keep.to(device)


@torch.no_grad()
def logprob_batch(parts: ModelParts, rows: Sequence[Row], pad_id: int, device: torch.device,
                logprob: torch.Tensor, wrong: torch.Tensor) -> None:
    """Add each scored target's log-prob to `logprob[request]` and count misses of the argmax in `wrong`."""
    dtype = next(parts.model.parameters()).dtype
    ids, pos, mask = row_tensors(rows, pad_id, device, parts.mask, dtype)
    b_idx = torch.tensor([b for b, r in enumerate(rows) for _ in r.scored], device=device)
    p_idx = torch.tensor([s[0] for r in rows for s in r.scored], device=device)
    targets = torch.tensor([s[1] for r in rows for s in r.scored], device=device)
    req = torch.tensor([s[2] for r in rows for s in r.scored], device=device)
    # Plain rows pass neither mask nor positions, so a model whose forward lacks them still works.
    extra = {} if mask is None else {"attention_mask": mask, "position_ids": pos}
    if parts.trunk is not None and parts.head is not None:
        hidden = parts.trunk(input_ids=ids, use_cache=False, **extra)
        picked = hidden.last_hidden_state[b_idx, p_idx]
        head = parts.head
    else:
        picked = parts.model(input_ids=ids, use_cache=False, **extra).logits[b_idx, p_idx]
        head = None
    for start in range(0, picked.shape[0], HEAD_CHUNK):
        chunk = picked[start : start + HEAD_CHUNK]
        logits = (head(chunk) if head is not None else chunk).float()
        tgt = targets[start : start + HEAD_CHUNK]
        r = req[start : start + HEAD_CHUNK].cpu()
        # log p(target) = logit - logsumexp: no [positions, vocab] log-softmax is written out,
        # which is most of the head's cost for a large vocabulary.
        lp = (logits.gather(1, tgt[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)).double().cpu()
        miss = (logits.argmax(dim=-1) != tgt).double().cpu()
        logprob.index_add_(0, r, lp)
        wrong.index_add_(0, r, miss)
