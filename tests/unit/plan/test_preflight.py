"""Preflight: what a user can fix is reported before any worker starts, as one line."""

from __future__ import annotations

import shutil

import pytest

from harness.checkpoint import Checkpoint
from harness.config import sweep_from_mapping
from harness.errors import UserError
from harness.plan.preflight import check_hub_model, check_local_tokenizer, preflight
from harness.plan.shards import build_plan


def _plan(world, model_path):
    return build_plan(sweep_from_mapping({"models": [str(model_path)], "tasks": ["tiny_mc"], "limit": 2,
                                          "include_path": [str(world["tasks"])]}, "test"))


def test_a_good_local_model_passes(tiny_world):
    preflight(_plan(tiny_world, tiny_world["small"]))


def test_pickle_only_weights_are_refused_before_any_worker(tiny_world, tmp_path):
    model = tmp_path / "pickled"
    shutil.copytree(tiny_world["small"], model)
    for f in model.glob("*.safetensors"):
        f.unlink()
    (model / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(UserError, match="only pickle weights"):
        preflight(_plan(tiny_world, model))


def test_a_tokenizer_without_pad_or_eos_is_named(tiny_world, tmp_path):
    import json

    model = tmp_path / "nopad"
    shutil.copytree(tiny_world["small"], model)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = model / name
        if path.exists():
            config = json.loads(path.read_text())
            for key in ("eos_token", "pad_token", "bos_token", "unk_token"):
                config.pop(key, None)
            path.write_text(json.dumps(config))
    tok = model / "tokenizer.json"
    if tok.exists():
        data = json.loads(tok.read_text())
        data["added_tokens"] = []
        tok.write_text(json.dumps(data))
    with pytest.raises(UserError, match="neither a pad nor an eos token"):
        check_local_tokenizer(model)


def test_an_unreachable_hub_model_says_what_to_do(tiny_world, monkeypatch, tmp_path):
    # Tests never reach a hub (loopback only): the hub call is replaced by the error an offline
    # machine gets, and the check must answer with the fix.
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", offline)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)

    class Model:
        checkpoint = Checkpoint("EleutherAI/pythia-70m", "step1000", False, None)

    with pytest.raises(UserError, match="not in the local cache and the hub cannot be reached"):
        check_hub_model(Model())
