"""The lm-eval `LM`s a sweep can name (`backend:`): an explicit registry, "did you mean" on a typo."""

from __future__ import annotations

import difflib
from typing import Any

from harness.errors import UserError


def _hf(model: Any, tokenizer: Any, device: str, batch_size: int):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, device=device, batch_size=batch_size)


def _fast(model: Any, tokenizer: Any, device: str, batch_size: int):
    from harness.backends.fast.lm import FastLM

    return FastLM(model, tokenizer, device=device, batch_size=batch_size)


# hf: lm-eval's HFLM, the reference. fast: ours, the same numbers with less work (backends/fast/).
BACKENDS = {"hf": _hf, "fast": _fast}


def make_lm(backend: str, model: Any, tokenizer: Any, device: str, batch_size: int):
    """The lm-eval `LM` that scores with `model` through `backend`."""
    if backend not in BACKENDS:
        hint = difflib.get_close_matches(backend, list(BACKENDS), n=1)
        fix = f"did you mean {hint[0]!r}?" if hint else f"use one of {', '.join(BACKENDS)}"
        raise UserError(f"unknown backend {backend!r}; {fix}")
    return BACKENDS[backend](model, tokenizer, device, batch_size)
