"""`FastLM`: lm-eval's HF backend with the same numbers, computed with less work.

It *is* an `HFLM` (so an lm-eval `LM`): tokenisation, truncation, the empty-context prefix token,
rolling windows, stop strings and decoding are inherited unchanged, and only the compute is replaced:

* loglikelihood: requests sharing a context run it once, the continuations attend to it through a
  block mask (`harness.backends.fast.pack`); short sequences are packed into rows; the output head and the
  log-softmax run only where a token is scored (`harness.backends.fast.logprobs`);
* loglikelihood_rolling: all windows of all documents are planned together and packed;
* generate_until: batched greedy decoding with a KV cache, a row leaving the batch as soon as it
  is finished (`harness.backends.fast.generate`). Sampling and unusual generation settings go to `HFLM`.

Each shortcut is checked on the model at construction against a plain forward pass and switched
off if the model does not honour it (e.g. an attention implementation that ignores 4-D masks).
This module exists for torch / transformers / lm-eval, so it imports them at the top; importing
`harness` does not import it.
"""

from __future__ import annotations

import logging

import torch
from lm_eval import utils as lm_utils
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text

from harness.backends.fast.generate import greedy_batch
from harness.backends.fast.pack import Scored, batches, make_units, pack_rows, split_request
from harness.backends.fast.logprobs import ModelParts, logprob_batch

log = logging.getLogger(__name__)

# Rows are packed up to the longest unit's length, and at least this many tokens (or the model's
# context, if shorter). Packing to the longest unit keeps the rows of a batch the same width, so
# the batch pads little; the floor lets tiny units (zero-shot items) share rows and fill the matmuls.
PACK_TOKENS = 128
# On a CPU, passes of ~4k tokens ran 15% faster than 8k-token ones (caches); GPUs want the full budget.
CPU_TOKENS_PER_PASS = 4096
# Generation settings that change which token is picked; with any of them set, `generate` applies
# a logits processor this backend does not implement, so those requests go to HFLM.
_PROCESSOR_SETTINGS = {
    "repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "bad_words_ids": None, "forced_bos_token_id": None,
    "forced_eos_token_id": None, "suppress_tokens": None, "begin_suppress_tokens": None, "min_length": 0,
    "min_new_tokens": None, "sequence_bias": None, "encoder_repetition_penalty": 1.0,
    "exponential_decay_length_penalty": None, "guidance_scale": None,
}


class FastLM(HFLM):
    """A faster lm-eval backend for an already-loaded causal LM; same results as `HFLM`.

    Args:
        model: a `transformers` causal LM (moved to `device` here).
        tokenizer: its tokenizer.
        device: "cpu", "cuda", "cuda:1", ...
        batch_size: sets the memory budget: a forward pass holds at most batch_size x max_length
            tokens, the most an HFLM batch of that size holds (on a CPU, at most 4096). Shorter
            rows make for more rows per pass (fewer, fuller matmuls). Does not change results.
        max_length: context length; default from the model config, as in HFLM.

    Example:
        >>> lm = FastLM(model, tokenizer, device="cpu", batch_size=16)   # doctest: +SKIP
        >>> lm.loglikelihood(instances)                                   # doctest: +SKIP
    """

    def __init__(self, model, tokenizer, device: str = "cpu", batch_size: int | str = 16,
                 max_length: int | None = None):
        if isinstance(batch_size, str) and batch_size.startswith("auto"):
            batch_size = 16  # a token budget, not a row count: no need to probe for the largest batch
        model = model.to(device)
        super().__init__(pretrained=model, tokenizer=tokenizer, device=device, batch_size=int(batch_size),
                         max_length=max_length)
        self._parts = _probe_parts(self.model, self.device)

    # ---- loglikelihood -------------------------------------------------------------------------
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
        """[(sum of log-probs, is greedy)] for (key, context tokens, continuation tokens) requests."""
        if not requests:
            return []
        if self.backend != "causal":  # encoder-decoder models keep HFLM's path
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        scored = [split_request(ctx, cont, self.max_length) for _, ctx, cont in requests]
        logprob, wrong = _score(self._parts, scored, self.max_length, self._token_budget(), self._pad_id(),
                                self.device)
        out = [(float(lp), bool(w == 0)) for lp, w in zip(logprob.tolist(), wrong.tolist(), strict=True)]
        for (key, _, _), answer in zip(requests, out, strict=True):
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, answer)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Total log-likelihood of each document, with HFLM's windows, all windows scored together."""
        windows, owner = [], []
        for i, (string,) in enumerate(req.args for req in requests):
            for ctx, cont in map(lm_utils.make_disjoint_window, lm_utils.get_rolling_token_windows(
                    token_list=self.tok_encode(string), prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length, context_len=1)):
                windows.append((None, ctx, cont))
                owner.append(i)
        window_scores = self._loglikelihood_tokens(windows)
        totals = [0.0] * len(requests)
        for i, (lp, _) in zip(owner, window_scores, strict=True):
            totals[i] += lp
        for req, total in zip(requests, totals, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    # ---- generation ----------------------------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy generations cut at the first stop string, as HFLM returns them."""
        eos = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        results: list[str | None] = [None] * len(requests)
        jobs: dict[tuple, list[int]] = {}
        settings: dict[tuple, tuple[list[str], int]] = {}
        fallback: list[int] = []
        for i, req in enumerate(requests):
            context, gen_kwargs = req.args
            kwargs = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
            max_gen = int(kwargs.pop("max_gen_toks"))
            kwargs.pop("temperature", None)
            if kwargs.pop("do_sample", False) or kwargs or not self._greedy_loop_ok():
                fallback.append(i)
                continue
            key = (tuple(until), max_gen)
            settings[key] = (until, max_gen)
            jobs.setdefault(key, []).append(i)
        for key, idxs in jobs.items():
            until, max_gen = settings[key]
            texts = self._greedy([requests[i].args[0] for i in idxs], until, max_gen)
            for i, text in zip(idxs, texts, strict=True):
                results[i] = text
                self.cache_hook.add_partial("generate_until", requests[i].args, text)
        if fallback:
            for i, text in zip(fallback, super().generate_until([requests[i] for i in fallback], disable_tqdm)):
                results[i] = text
        return results  # type: ignore[return-value]

    def _greedy(self, contexts: list[str], until: list[str], max_gen: int) -> list[str]:
        max_ctx = self.max_length - max_gen
        if max_ctx <= 0:
            raise ValueError(f"max_gen_toks ({max_gen}) must be less than the model's max length ({self.max_length})")
        encoded = [self._encode_prompt(c)[-max_ctx:] for c in contexts]
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        eos_ids = _eos_ids(self.model)
        texts: list[str] = [""] * len(contexts)
        budget = self._token_budget()
        while order:
            # As many prompts as fit the token budget once fully generated (the longest comes first).
            take = max(1, budget // (len(encoded[order[0]]) + max_gen))
            idx, order = order[:take], order[take:]
            gens = greedy_batch(self.model, self.tokenizer, [encoded[i] for i in idx], until, max_gen, eos_ids,
                                self._pad_id(), self.device)
            for i, toks in zip(idx, gens, strict=True):
                texts[i] = postprocess_generated_text(self.tok_decode(toks), stop=until, think_end_token=None)
        return texts

    def _encode_prompt(self, context: str) -> list[int]:
        """The tokens HFLM's `tok_batch_encode` gives this context (special tokens decided per string)."""
        from lm_eval.models.utils import has_bos_prefix

        kwargs = {}
        if has_bos_prefix(context, getattr(self.tokenizer, "bos_token", None)):
            kwargs = {"add_special_tokens": False}
        elif self.add_bos_token is not None:
            kwargs = {"add_special_tokens": self.add_bos_token}
        return list(self.tokenizer(context, **kwargs)["input_ids"])

    def _greedy_loop_ok(self) -> bool:
        """False when HFLM's generate would apply settings the greedy loop does not reproduce."""
        if self.think_end_token is not None or self.backend != "causal":
            return False
        gc = getattr(self.model, "generation_config", None)
        return gc is None or all(getattr(gc, k, v) in (v, None) for k, v in _PROCESSOR_SETTINGS.items())

    def _token_budget(self) -> int:
        """Tokens per forward pass: what an HFLM batch of batch_size full-length rows holds."""
        budget = self.batch_size * self.max_length
        return min(budget, CPU_TOKENS_PER_PASS) if self.device.type == "cpu" else budget

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.eot_token_id)


def _eos_ids(model) -> set[int]:
    """Token ids at which `generate` ends a sequence (its generation config's EOS)."""
    gc = getattr(model, "generation_config", None)
    eos = getattr(gc, "eos_token_id", None)
    if eos is None:
        return set()
    return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}


def _score(parts: ModelParts, scored: list[Scored], max_length: int, budget: int, pad_id: int,
           device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probs and argmax misses per request (float64, on the CPU)."""
    share = parts.mask is not None
    units = make_units(scored, capacity=max(max_length, 4 * PACK_TOKENS), share_prefixes=share)
    rows = pack_rows(units, capacity=min(max_length, PACK_TOKENS), pack=share)
    logprob = torch.zeros(len(scored), dtype=torch.float64)
    wrong = torch.zeros(len(scored), dtype=torch.float64)
    for batch in batches(rows, max_tokens=budget):
        logprob_batch(parts, batch, pad_id, device, logprob, wrong)
    return logprob, wrong


@torch.no_grad()
def _probe_parts(model, device: torch.device) -> ModelParts:
    """Decide, on this very model, which shortcuts reproduce a plain forward pass.

    1. trunk + head separately (so the head runs on scored positions only) == model(x).logits;
    2. prefix sharing and packing through a custom 4-D mask == one plain pass per request.
    """
    dtype = next(model.parameters()).dtype
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    gen = torch.Generator().manual_seed(0)
    vocab = model.get_output_embeddings().weight.shape[0] if model.get_output_embeddings() is not None else 2
    x = torch.randint(0, vocab, (2, 12), generator=gen).to(device)
    trunk, head = model.base_model, model.get_output_embeddings()
    if trunk is model or head is None:
        trunk = head = None
    else:
        try:
            split = head(trunk(input_ids=x, use_cache=False).last_hidden_state)
            if not torch.allclose(split.float(), model(input_ids=x).logits.float(), atol=tol, rtol=0):
                trunk = head = None
        except Exception as err:  # noqa: BLE001 - any failure means "do not use this shortcut"
            log.info("fast backend: trunk/head split unavailable (%s)", err)
            trunk = head = None
    impl = getattr(model.config, "_attn_implementation", None)
    mask = {"sdpa": "bool", "eager": "float"}.get(impl)
    plain = ModelParts(model, trunk, head, None)
    if mask is None:
        return plain
    ctx = x[0].tolist()
    reqs = [split_request(ctx[:7], ctx[7:9], 64), split_request(ctx[:7], ctx[7:12], 64),
            split_request(ctx[:7], x[1, :3].tolist(), 64), split_request(x[1, :5].tolist(), x[1, 5:].tolist(), 64)]
    packed = ModelParts(model, trunk, head, mask)
    try:
        got, _ = _score(packed, reqs, 64, 128, 0, device)
        want, _ = _score(plain, reqs, 64, 128, 0, device)
        if torch.allclose(got, want, atol=tol * 10, rtol=0):
            return packed
        log.warning("fast backend: %s attention ignores custom masks here; prefix sharing is off", impl)
    except Exception as err:  # noqa: BLE001
        log.warning("fast backend: custom 4-D masks failed (%s); prefix sharing is off", err)
    return plain
