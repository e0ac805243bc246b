"""Checks before any worker starts: everything a user can fix is reported now, as one line.

An hour into a sweep is the wrong time to learn that a checkpoint is pickle-only, a tokenizer
has no pad token, or a hub id cannot be reached from this machine.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import UserError, first_line
from harness.checkpoint import check_weights_format, revision_label
from harness.plan.models import ModelRevision
from harness.plan.shards import Plan


def check_local_tokenizer(folder: Path) -> None:
    """A tokenizer must have a pad or an eos token: batching pads with one of them."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except Exception as exc:  # noqa: BLE001 - a broken tokenizer folder is user input
        raise UserError(f"{folder}: cannot load the tokenizer: {first_line(exc)}") from None
    if tokenizer.pad_token is None and tokenizer.eos_token is None:
        raise UserError(f"{folder}: the tokenizer has neither a pad nor an eos token; set "
                        f"\"eos_token\" (or \"pad_token\") in {folder / 'tokenizer_config.json'}")


def check_hub_model(model: ModelRevision) -> None:
    """A hub id must be in the local cache or reachable, and its revision must exist."""
    from huggingface_hub import try_to_load_from_cache

    source, revision = model.checkpoint.source, model.checkpoint.revision
    cached = try_to_load_from_cache(source, "config.json", revision=revision)
    if isinstance(cached, str):
        return
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        HfApi().model_info(source, revision=revision, timeout=10)
    except RevisionNotFoundError:
        raise UserError(f"model {source!r}: revision {revision!r} does not exist on the hub; "
                        f"check the name (Pythia revisions look like step143000)") from None
    except RepositoryNotFoundError:
        raise UserError(f"model {source!r} does not exist on the hub and is not a local folder; "
                        f"check the id or the path") from None
    except Exception:  # noqa: BLE001 - offline, DNS, proxy: all mean "cannot download"
        raise UserError(f"model {source!r}@{revision_label(revision)} is not in the local cache and the hub "
                        f"cannot be reached; download it on a connected machine (or set HF_HOME to a "
                        f"cache that has it), or point the sweep at a local folder") from None


def preflight(plan: Plan) -> None:
    """Raise UserError for the first problem found in any model of the plan."""
    seen_tokenizers: set[str] = set()
    for model in plan.model_revisions:
        checkpoint = model.checkpoint
        if checkpoint.is_local:
            check_weights_format(checkpoint, model.spec.allow_pickle)
            if checkpoint.source not in seen_tokenizers:
                check_local_tokenizer(Path(checkpoint.source))
                seen_tokenizers.add(checkpoint.source)
        else:
            check_hub_model(model)
