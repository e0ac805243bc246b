"""Loading a checkpoint safely and scoring requests through lm-eval's `LM` contract. No Ray here.

`Scorer` is the stateful predictor a Ray worker wraps: load once in the constructor, score a
list of lm-eval `Instance`s per call. It is tested without Ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.plan.models import Checkpoint

_TORCH_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


class ModelLoadError(Exception):
    """A model could not be loaded: every shard of it fails, the rest of the sweep goes on."""


class NonFiniteScoreError(Exception):
    """A request scored NaN or infinity (broken weights, fp16 overflow): the shard fails."""


@dataclass(frozen=True)
class ParamCounts:
    total: int
    nonembedding: int


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' requested but no CUDA device is visible; use --device cpu")
    return device


def check_weights_format(checkpoint: Checkpoint, allow_pickle: bool) -> None:
    """Refuse pickle-only local checkpoints: unpickling runs arbitrary code."""
    if not checkpoint.is_local or allow_pickle:
        return
    folder = Path(checkpoint.source)
    if any(folder.glob("*.safetensors")):
        return
    if any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
        raise UserError(
            f"{folder}: only pickle weights (pytorch_model.bin) found; pickle can run code on load. "
            f"Convert to safetensors, or opt in with `allow_pickle: true` in the sweep / --allow-pickle"
        )
    raise UserError(f"{folder}: no model weights (*.safetensors) found")


def count_parameters(model: Any) -> ParamCounts:
    """Total and non-embedding parameters, measured on the loaded model.

    Non-embedding excludes every `nn.Embedding` (token and learned position embeddings) and an
    output head that is not tied to the input embedding, as Kaplan et al. and Pythia count them.
    """
    import torch

    seen: set[int] = set()
    total = 0
    embedding = 0
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if id(param) in seen:
                continue  # tied weights count once
            seen.add(id(param))
            total += param.numel()
            if isinstance(module, torch.nn.Embedding):
                embedding += param.numel()
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    input_emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if head is not None and input_emb is not None and head.weight is not input_emb.weight:
        embedding += head.weight.numel()
    return ParamCounts(total=total, nonembedding=total - embedding)


def load_model(checkpoint: Checkpoint, dtype: str, device: str, trust_remote_code: bool, allow_pickle: bool,
               device_map: str | None = None):
    """Load tokenizer and model; return (model, tokenizer). Raises ModelLoadError with the cause.

    `device_map="auto"` (a replica holding several GPUs) lets accelerate spread the layers over
    every visible GPU; it only applies on CUDA; on a CPU the model is loaded whole.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_weights_format(checkpoint, allow_pickle)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if checkpoint.revision:
        kwargs["revision"] = checkpoint.revision
    spread = device_map is not None and device == "cuda"
    try:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint.source, **kwargs)
        torch_dtype = getattr(torch, _TORCH_DTYPES[dtype]) if dtype in _TORCH_DTYPES else (
            torch.float32 if device == "cpu" else "auto")
        model = AutoModelForCausalLM.from_pretrained(
            checkpoint.source, dtype=torch_dtype, use_safetensors=not allow_pickle,
            **({"device_map": device_map} if spread else {}), **kwargs)
    except Exception as exc:  # noqa: BLE001 - any loader failure is reported per model
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{checkpoint.source}@{checkpoint.revision or 'main'}: {first}") from exc
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelLoadError(f"{checkpoint.source}: tokenizer has neither pad nor eos token; "
                                 f"add one to tokenizer_config.json")
        tokenizer.pad_token = tokenizer.eos_token
    if not spread:
        model.to(device)  # a spread model is already placed, layer by layer
    model.eval()
    return model, tokenizer


def make_lm(backend: str, model: Any, tokenizer: Any, device: str, batch_size: int):
    """The lm-eval `LM` for a backend: `hf` (lm-eval's HFLM, the reference) or `fast` (ours)."""
    if backend == "hf":
        from lm_eval.models.huggingface import HFLM

        return HFLM(pretrained=model, tokenizer=tokenizer, device=device, batch_size=batch_size)
    if backend == "fast":
        from harness.backends.fast.lm import FastLM

        return FastLM(model, tokenizer, device=device, batch_size=batch_size)
    raise UserError(f"unknown backend {backend!r}; use hf or fast")


class Scorer:
    """Holds one model and scores lists of lm-eval Instances.

    Example:
        scorer = Scorer(checkpoint, dtype="float32", device="cpu", backend="hf", batch_size=8)
        rows = scorer.score(instances)   # one dict per instance, request-table columns
    """

    def __init__(self, checkpoint: Checkpoint, dtype: str, device: str, backend: str,
                 batch_size: int, trust_remote_code: bool = False, allow_pickle: bool = False,
                 device_map: str | None = None) -> None:
        self.device = resolve_device(device)
        self.model, self.tokenizer = load_model(checkpoint, dtype, self.device, trust_remote_code, allow_pickle,
                                                device_map)
        self.params = count_parameters(self.model)
        self.lm = make_lm(backend, self.model, self.tokenizer, self.device, batch_size)

    def _n_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def score(self, instances: list) -> list[dict]:
        """Score instances (all request types mixed); rows follow results.REQUESTS_SCHEMA minus ids."""
        by_type: dict[str, list[int]] = {}
        for i, inst in enumerate(instances):
            by_type.setdefault(inst.request_type, []).append(i)
        rows: list[dict | None] = [None] * len(instances)
        for request_type, positions in by_type.items():
            batch = [instances[i] for i in positions]
            outputs = getattr(self.lm, request_type)(batch)
            for pos, inst, out in zip(positions, batch, outputs, strict=True):
                rows[pos] = self._row(inst, request_type, out)
        return rows  # type: ignore[return-value]

    def _row(self, inst: Any, request_type: str, out: Any) -> dict:
        row = {"loglikelihood": None, "is_greedy": None, "generation": None, "n_tokens": 0}
        if request_type == "loglikelihood":
            row["loglikelihood"], row["is_greedy"] = float(out[0]), bool(out[1])
            row["n_tokens"] = self._n_tokens(inst.args[1])
        elif request_type == "loglikelihood_rolling":
            row["loglikelihood"] = float(out)
            row["n_tokens"] = self._n_tokens(inst.args[0])
        else:
            row["generation"] = str(out)
            row["n_tokens"] = self._n_tokens(str(out))
        if row["loglikelihood"] is not None and not math.isfinite(row["loglikelihood"]):
            raise NonFiniteScoreError(
                f"request {inst.metadata[0]} doc {inst.doc_id} scored {row['loglikelihood']}: the "
                f"checkpoint's weights or dtype are broken (try dtype float32)")
        return row
