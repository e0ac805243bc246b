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


def _static_cache(model: torch.nn.Module, length: int):
    """A transformers StaticCache for `length` positions, or None where the model or version has none."""
    if not getattr(model, "_can_compile_fullgraph", False):
        return None
    try:
        from transformers import StaticCache

        return StaticCache(config=model.config, max_cache_len=length)
    except (ImportError, TypeError, ValueError):
        return None


def _select_rows(cache, sel: torch.Tensor) -> bool:
    """Keep only rows `sel` of the cache; False where this cache cannot drop rows (they stay in the batch).

    transformers' static layers have no `batch_select_indices`; their preallocated tensors are
    sliced here the same way the dynamic layers slice theirs.
    """
    try:
        cache.batch_select_indices(sel)
        return True
    except (AttributeError, NotImplementedError):
        pass
    layers = getattr(cache, "layers", None)
    if not layers or not all(getattr(layer, "is_initialized", False) and hasattr(layer, "keys") for layer in layers):
        return False
    for layer in layers:
        layer.keys, layer.values = layer.keys[sel], layer.values[sel]
        if hasattr(layer, "batch_size"):
            layer.batch_size = len(sel)
    return True


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
    # A preallocated cache: each decode step writes its keys and values in place, where a dynamic
    # cache concatenates them onto a copy of the whole cache (measured: ~9% of a 10M model's time).
    cache = _static_cache(model, width + max_gen_toks)
    out = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True, logits_to_keep=1,
                **({cache_name: cache} if cache is not None else {}))
    cache = _returned_cache(out)
    logits = out.logits[:, -1, :]
    generated: list[list[int]] = [[] for _ in range(n)]
    rows = list(range(n))  # original index of each row of the batch, in batch order
    finished = [False] * n  # rows that cannot leave the cache stay in the batch, ignored
    can_drop = True  # False once the cache has refused to drop rows: do not ask it again each step
    next_pos = pos[:, -1:] + 1
    stops = [s for s in until if s]
    while True:
        nxt = logits.float().argmax(dim=-1)
        keep: list[int] = []
        for b, i in enumerate(rows):
            if finished[i]:
                continue
            tok = int(nxt[b])
            generated[i].append(tok)
            text = tokenizer.decode(generated[i], skip_special_tokens=True)
            finished[i] = tok in eos_ids or len(generated[i]) >= max_gen_toks or any(s in text for s in stops)
            if not finished[i]:
                keep.append(b)
        if not keep:
            break
        if can_drop and len(keep) < len(rows):
            sel = torch.tensor(keep, device=device)
            can_drop = _select_rows(cache, sel)
            if can_drop:
                nxt, attn, next_pos = nxt[sel], attn[sel], next_pos[sel]
                rows = [rows[b] for b in keep]
        attn = torch.cat([attn, attn.new_ones((len(rows), 1))], dim=1)
        out = model(input_ids=nxt[:, None], attention_mask=attn, position_ids=next_pos, use_cache=True,
                    **{cache_name: cache})
        cache = _returned_cache(out)
        logits = out.logits[:, -1, :]
        next_pos = next_pos + 1
    return generated
