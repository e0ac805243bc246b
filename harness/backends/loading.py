"""Loading a checkpoint safely: what a worker is asked to load (`LoadSpec`), and the loading itself.

`LoadSpec` is the one value that crosses the process boundary from the engine's driver to a
worker; the worker hands it on to the `RequestRunner` unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.checkpoint import Checkpoint, check_weights_format, revision_label
from harness.errors import UserError, first_line

_TORCH_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


@dataclass(frozen=True)
class LoadSpec:
    """One model revision as a worker loads it, and how it scores."""

    checkpoint: Checkpoint
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16 (auto: float32 on CPU, the checkpoint's on GPU)
    device: str = "auto"  # auto | cpu | cuda
    backend: str = "fast"  # the lm-eval LM that scores: fast (ours) or hf (lm-eval's HFLM)
    batch_size: int = 16
    trust_remote_code: bool = False
    allow_pickle: bool = False
    num_gpus: float = 0.0  # the replica's GPU share; more than one GPU spreads the layers

    @property
    def device_map(self) -> str | None:
        return "auto" if self.num_gpus > 1 else None


class ModelLoadError(Exception):
    """A model could not be loaded: every shard of it fails, the rest of the sweep goes on."""


class NonFiniteLoglikelihoodError(Exception):
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


def load_model(spec: LoadSpec, device: str):
    """Load tokenizer and model on `device` (resolved); return (model, tokenizer).

    Raises ModelLoadError with the cause. A replica holding several GPUs spreads the layers over
    every visible GPU (`device_map="auto"`); that only applies on CUDA; on a CPU the model is
    loaded whole.
    """
    checkpoint, dtype, allow_pickle = spec.checkpoint, spec.dtype, spec.allow_pickle
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_weights_format(checkpoint, allow_pickle)
    kwargs: dict[str, Any] = {"trust_remote_code": spec.trust_remote_code}
    if checkpoint.commit or checkpoint.revision:  # the commit the plan keyed its shards by, when known
        kwargs["revision"] = checkpoint.commit or checkpoint.revision
    spread = spec.device_map is not None and device == "cuda"
    try:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint.source, **kwargs)
        torch_dtype = getattr(torch, _TORCH_DTYPES[dtype]) if dtype in _TORCH_DTYPES else (
            torch.float32 if device == "cpu" else "auto")
        model = AutoModelForCausalLM.from_pretrained(
            checkpoint.source, dtype=torch_dtype, use_safetensors=not allow_pickle,
            **({"device_map": spec.device_map} if spread else {}), **kwargs)
    except Exception as exc:  # noqa: BLE001 - any loader failure is reported per model
        first = first_line(exc)
        raise ModelLoadError(f"{checkpoint.source}@{revision_label(checkpoint.revision)}: {first}") from exc
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelLoadError(f"{checkpoint.source}: tokenizer has neither pad nor eos token; "
                                 f"add one to tokenizer_config.json")
        tokenizer.pad_token = tokenizer.eos_token
    if not spread:
        model.to(device)  # a spread model is already placed, layer by layer
    model.eval()
    return model, tokenizer
