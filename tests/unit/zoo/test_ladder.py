"""The zoo builder: a tiny ladder (2 sizes x 2 checkpoints, a few steps) in the layout the loader
resolves, loadable by transformers, deterministic with the seed; `zoo list` shows it."""

from __future__ import annotations

import argparse
import json

import pytest

from harness.zoo.ladder import Ladder, list_ladder

TINY = Ladder(
    sizes=(
        dict(name="tiny-a", d_model=16, n_layers=1, n_heads=2, d_ffn=32, lr=1e-2),
        dict(name="tiny-b", d_model=32, n_layers=2, n_heads=2, d_ffn=64, lr=1e-2),
    ),
    total_steps=4,
    n_checkpoints=2,
    vocab_size=300,
    english_docs=40,
)


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    from harness.zoo.ladder import build

    out = tmp_path_factory.mktemp("zoo")
    records = build(out, seed=3, ladder=TINY, threads=1, probe=False, log=lambda _: None)
    return out, records


@pytest.mark.slow
def test_build_writes_loadable_checkpoints_in_layout(tiny_zoo):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, records = tiny_zoo
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["tiny-a", "tiny-b"]
    for size in ("tiny-a", "tiny-b"):
        assert sorted(p.name for p in (out / size).iterdir()) == ["step2", "step4"]
        folder = out / size / "step4"
        assert (folder / "model.safetensors").is_file()
        meta = json.loads((folder / "harness.json").read_text())
        assert meta["step"] == 4 and meta["tokens_trained"] == 4 * 16 * 256
        model = AutoModelForCausalLM.from_pretrained(folder)
        tok = AutoTokenizer.from_pretrained(folder)
        assert meta["n_params"] == sum(p.numel() for p in model.parameters())
        assert meta["n_params_nonembedding"] == meta["n_params"] - model.get_input_embeddings().weight.numel()
        assert model.dtype == torch.bfloat16
        ids = tok("Q: What is 12 plus 34?\nA:", return_tensors="pt").input_ids
        assert model(ids).logits.shape[-1] == len(tok)
        # digits are one token each, a leading space attaches to the first one
        assert tok.tokenize(" 1234") == ["Ġ1", "2", "3", "4"]
    assert [(r["size"], r["step"]) for r in records] == [("tiny-a", 2), ("tiny-a", 4), ("tiny-b", 2), ("tiny-b", 4)]
    assert not (out / "_build").exists()


@pytest.mark.slow
def test_build_is_deterministic_with_the_seed(tiny_zoo, tmp_path):
    from safetensors.torch import load_file

    from harness.zoo.ladder import build

    out, _ = tiny_zoo
    small = Ladder(sizes=TINY.sizes[:1], total_steps=4, n_checkpoints=2, vocab_size=300, english_docs=40)
    again = build(tmp_path / "same", seed=3, ladder=small, threads=1, probe=False, log=lambda _: None)
    other = build(tmp_path / "other", seed=4, ladder=small, threads=1, probe=False, log=lambda _: None)
    ref = load_file(out / "tiny-a" / "step4" / "model.safetensors")
    same = load_file(tmp_path / "same" / "tiny-a" / "step4" / "model.safetensors")
    diff = load_file(tmp_path / "other" / "tiny-a" / "step4" / "model.safetensors")
    assert all((ref[k] == same[k]).all() for k in ref)
    assert any((ref[k] != diff[k]).any() for k in ref)
    assert again[0]["heldout_loss"] > 0 and other[0]["heldout_loss"] > 0


@pytest.mark.slow
def test_list_ladder_and_cli(tiny_zoo, capsys):
    from harness.cli import zoo as cli_zoo

    out, _ = tiny_zoo
    rows = list_ladder(out)
    assert [(r["name"], r["revision"]) for r in rows] == [
        ("tiny-a", "step2"), ("tiny-a", "step4"), ("tiny-b", "step2"), ("tiny-b", "step4")]
    assert rows[0]["n_params"] < rows[2]["n_params"]
    parser = argparse.ArgumentParser()
    cli_zoo.register(parser.add_subparsers())
    args = parser.parse_args(["zoo", "list", "--root", str(out)])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["name", "revision", "params", "non-embedding", "tokens"]
    assert len(lines) == 5 and lines[-1].split()[:2] == ["tiny-b", "step4"]
    assert lines[-1].split()[-1] == f"{4 * 16 * 256:,}"


def test_list_ladder_missing_folder_is_a_user_error(tmp_path):
    from harness.errors import UserError

    with pytest.raises(UserError, match="zoo build"):
        list_ladder(tmp_path / "nope")


def test_checkpoint_steps_are_log_spaced():
    assert Ladder(sizes=(), total_steps=2048, n_checkpoints=4).checkpoint_steps() == [256, 512, 1024, 2048]
