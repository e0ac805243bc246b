"""Batched greedy generation with a KV cache that drops each sequence as soon as it is finished.

lm-eval's HF backend calls `model.generate` and only stops a batch when *every* sequence has met a
stop string; finished rows keep being decoded. Here a row leaves the batch (and the cache) once its
text contains a stop string, it emits an end-of-sequence token of the generation config, or it has
`max_gen_toks` tokens. The text kept is the same: lm-eval cuts the generation at the first stop
string, and nothing after that point can change what comes before it.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch


def _cache_kwarg(model: torch.nn.Module) -> str:
    """transformers 5 calls the KV cache argument `cache`; earlier versions `past_key_values`."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _returned_cache(out):
    return getattr(out, "cache", None) if getattr(out, "cache", None) is not None else out.past_key_values


@torch.no_grad()
def greedy_batch(model: torch.nn.Module, tokenizer, contexts: Sequence[Sequence[int]], until: Sequence[str],
                 max_gen_toks: int, eos_ids: set[int], pad_id: int, device: torch.device) -> list[list[int]]:
    """Generated token ids for each context (left-padded into one batch), greedy.

    Each list ends with the token that finished it (stop string completed, EOS) or has max_gen_toks.
    """
    n = len(contexts)
    width = max(len(c) for c in contexts)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    for i, c in enumerate(contexts):
        ids[i, width - len(c):] = torch.tensor(list(c), dtype=torch.long)
        attn[i, width - len(c):] = 1
    ids, attn = ids.to(device), attn.to(device)
    # Same position ids as `generate` derives from a left-padded attention mask.
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    cache_name = _cache_kwarg(model)
    out = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True, logits_to_keep=1)
    cache = _returned_cache(out)
    logits = out.logits[:, -1, :]
    generated: list[list[int]] = [[] for _ in range(n)]
    alive = list(range(n))  # original indices of the rows still in the batch, in batch order
    next_pos = pos[:, -1:] + 1
    stops = [s for s in until if s]
    while alive:
        nxt = logits.float().argmax(dim=-1)
        keep: list[int] = []
        for b, i in enumerate(alive):
            tok = int(nxt[b])
            generated[i].append(tok)
            text = tokenizer.decode(generated[i], skip_special_tokens=True)
            done = tok in eos_ids or len(generated[i]) >= max_gen_toks or any(s in text for s in stops)
            if not done:
                keep.append(b)
        if not keep:
            break
        if len(keep) < len(alive):
            sel = torch.tensor(keep, device=device)
            cache.batch_select_indices(sel)
            nxt, attn, next_pos = nxt[sel], attn[sel], next_pos[sel]
            alive = [alive[b] for b in keep]
        attn = torch.cat([attn, attn.new_ones((len(alive), 1))], dim=1)
        out = model(input_ids=nxt[:, None], attention_mask=attn, position_ids=next_pos, use_cache=True,
                    **{cache_name: cache})
        cache = _returned_cache(out)
        logits = out.logits[:, -1, :]
        next_pos = next_pos + 1
    return generated
