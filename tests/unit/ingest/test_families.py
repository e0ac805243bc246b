"""The family table: Pythia (v1.1, deduped, v0 and the old names; step -> tokens) and GPT-2 from its architecture."""

from __future__ import annotations

import pytest

from harness.ingest.families import PYTHIA, PYTHIA_TOTAL_TOKENS, family_sizes, transformer_counts

# Layers and d_model per size: Biderman et al. 2023, Table 1.
PYTHIA_SHAPES = {"70m": (6, 512), "160m": (12, 768), "410m": (24, 1024), "1b": (16, 2048), "1.4b": (24, 2048),
                 "2.8b": (32, 2560), "6.9b": (32, 4096), "12b": (36, 5120)}


@pytest.mark.parametrize("name", ["EleutherAI/pythia-70m", "pythia-v1.1-70m", "EleutherAI/pythia-70m-deduped",
                                  "EleutherAI/pythia-v1.1-70m-deduped", "/data/ckpts/Pythia-70M"])
def test_pythia_names_share_the_published_counts(name):
    sizes = family_sizes(name, "step1000")
    assert (sizes.n_params, sizes.n_params_nonembedding) == (70_426_624, 18_915_328)
    assert sizes.tokens_trained == 1000 * 2_097_152


def test_pythia_steps_give_tokens_and_main_is_the_last_step():
    assert family_sizes("EleutherAI/pythia-12b", "step0").tokens_trained == 0
    assert family_sizes("EleutherAI/pythia-12b", "step143000").tokens_trained == 299_892_736_000
    assert family_sizes("EleutherAI/pythia-12b", "main").tokens_trained == PYTHIA_TOTAL_TOKENS == 299_892_736_000
    assert family_sizes("EleutherAI/pythia-12b", "my-branch").tokens_trained is None
    assert family_sizes("EleutherAI/pythia-12b", "main").n_params_nonembedding == 11_327_027_200


def test_v0_names_keep_sizes_with_the_first_suites_batches():
    old = family_sizes("EleutherAI/pythia-125m", "step1000")  # the old name of 160M: a v0 model
    assert (old.n_params, old.n_params_nonembedding) == PYTHIA["160m"]
    assert old.tokens_trained == 1000 * 4_194_304  # v0 trained 160M, 410M and 1.4B with 4M-token batches
    assert family_sizes("EleutherAI/pythia-160m-v0", "step1000") == old
    assert family_sizes("EleutherAI/pythia-1.4b-deduped-v0", "step10").tokens_trained == 10 * 4_194_304
    assert family_sizes("EleutherAI/pythia-19m", "step10").tokens_trained == 10 * 2_097_152  # 70M: 2M batches
    assert family_sizes("EleutherAI/pythia-6.7b", "main").n_params == PYTHIA["6.9b"][0]


def test_unknown_names_are_not_guessed():
    for name in ("EleutherAI/pythia-14m", "pythia-3b", "my-pythia-70m", "pythia-v1.1-19m", "gpt2-xxl", "llama-7b"):
        assert family_sizes(name, "main") is None, name


@pytest.mark.parametrize("size", sorted(PYTHIA))
def test_the_architecture_formula_gives_the_published_nonembedding_counts(size):
    layers, d_model = PYTHIA_SHAPES[size]
    total, nonembedding = PYTHIA[size]
    assert transformer_counts(layers, d_model, vocab=0)[1] == nonembedding
    vocab = (total - nonembedding) // (2 * d_model)  # untied input and output embeddings (padded vocabulary)
    assert transformer_counts(layers, d_model, vocab, tied=False) == (total, nonembedding)


def test_gpt2_counts_come_from_its_architecture():
    expected = {"gpt2": 124_439_808, "gpt2-medium": 354_823_168, "gpt2-large": 774_030_080, "gpt2-xl": 1_557_611_200}
    for name, total in expected.items():
        sizes = family_sizes(f"openai-community/{name}", "main")
        assert sizes.n_params == total and sizes.tokens_trained is None
    assert family_sizes("gpt2", "main").n_params_nonembedding == 85_056_000
