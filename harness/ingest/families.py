"""Model families whose sizes and training schedules are published, so their results import with no --meta.

Matched on the last component of the model name, case-insensitively (`EleutherAI/pythia-70m`,
`pythia-v1.1-70m`, `/data/pythia-70m-deduped` alike). Covered:

* Pythia (Biderman et al. 2023, "Pythia: A Suite for Analyzing Large Language Models Across Training
  and Scaling"; the model cards' table "Naming convention and parameter count"): 70m 160m 410m 1b 1.4b
  2.8b 6.9b 12b, as `pythia-<size>`, `pythia-v1.1-<size>` (the name of the retrained suite in
  EleutherAI's own evaluation files), `-deduped` (same architecture, deduplicated Pile), `-v0` and
  the pre-January-2023 names 19m 125m 350m 800m 1.3b 2.7b 6.7b 13b (the first suite, "v0"). 14m and
  31m are left out: neither the paper nor the model cards' table gives their counts (use --meta).
* GPT-2 (Radford et al. 2019, Table 2: 12/24/36/48 layers, d_model 768/1024/1280/1600; vocabulary
  50,257, context 1,024): `gpt2`, `gpt2-medium`, `gpt2-large`, `gpt2-xl`. Counts are computed from the
  architecture (`transformer_counts`); its training tokens are not published, so they stay unknown.
"""

from __future__ import annotations

import re

from harness.checkpoint import step_of
from harness.ingest.records import Sizes
from harness.plan.models import PYTHIA_FINAL_STEP, PYTHIA_TOKENS_PER_STEP

# Published counts (Pythia model cards, "Naming convention and parameter count"; the paper's Table 1
# gives the non-embedding column): current size -> (total, non-embedding).
PYTHIA = {
    "70m": (70_426_624, 18_915_328),
    "160m": (162_322_944, 85_056_000),
    "410m": (405_334_016, 302_311_424),
    "1b": (1_011_781_632, 805_736_448),
    "1.4b": (1_414_647_808, 1_208_602_624),
    "2.8b": (2_775_208_960, 2_517_652_480),
    "6.9b": (6_857_302_016, 6_444_163_072),
    "12b": (11_846_072_320, 11_327_027_200),
}
# Names before the January 2023 renaming (model cards, same table: "old suffix"); those are v0 models.
PYTHIA_OLD_NAMES = {"19m": "70m", "125m": "160m", "350m": "410m", "800m": "1b", "1.3b": "1.4b",
                    "2.7b": "2.8b", "6.7b": "6.9b", "13b": "12b"}
# The v0 suite trained 160M, 410M and 1.4B with 4M-token batches, every other size with 2M (model cards,
# "Changelog"; the paper's Appendix B); the retrained suite uses 2,097,152 tokens a step for all sizes.
V0_LARGE_BATCH = {"160m", "410m", "1.4b"}
# Every size saw the same 299,892,736,000 tokens, so `main` (the last checkpoint) is that in both suites.
PYTHIA_TOTAL_TOKENS = PYTHIA_FINAL_STEP * PYTHIA_TOKENS_PER_STEP

_PYTHIA_NAME = re.compile(r"^pythia-(?P<v11>v1\.1-)?(?P<size>\d+(?:\.\d+)?[mb])(?P<dedup>-deduped)?(?P<v0>-v0)?$")

GPT2_VOCAB, GPT2_CONTEXT = 50_257, 1_024
# name -> (layers, d_model), Radford et al. 2019, Table 2.
GPT2 = {"gpt2": (12, 768), "gpt2-medium": (24, 1024), "gpt2-large": (36, 1280), "gpt2-xl": (48, 1600)}


def transformer_counts(layers: int, d_model: int, vocab: int, context: int = 0, tied: bool = True) -> tuple[int, int]:
    """(total, non-embedding) parameters of a GPT-2 / GPT-NeoX block stack with 4x MLP and biases.

    Per layer: attention QKV (3d^2 + 3d) and output (d^2 + d), MLP (4d^2 + 4d and 4d^2 + d), two
    LayerNorms (4d): 12d^2 + 13d; plus the final LayerNorm (2d). Embeddings: tokens (vocab x d),
    learned positions (context x d, GPT-2), and an untied output head (vocab x d, Pythia). The formula
    gives all eight published Pythia counts exactly (tests/unit/ingest/test_families.py), and GPT-2
    small's well-known 124,439,808.

    >>> transformer_counts(12, 768, 50_257, context=1_024)
    (124439808, 85056000)
    """
    nonembedding = layers * (12 * d_model**2 + 13 * d_model) + 2 * d_model
    embedding = vocab * d_model + context * d_model + (0 if tied else vocab * d_model)
    return nonembedding + embedding, nonembedding


def family_sizes(model: str, revision: str) -> Sizes | None:
    """Sizes and tokens trained for a known family's model revision; None for any other model.

    >>> family_sizes("EleutherAI/pythia-v1.1-70m", "step1000")
    Sizes(n_params=70426624, n_params_nonembedding=18915328, tokens_trained=2097152000)
    >>> family_sizes("EleutherAI/pythia-125m-deduped", "step1000").tokens_trained  # v0: 4M-token batches
    4194304000
    """
    name = model.rstrip("/").rsplit("/", 1)[-1].lower()
    if name in GPT2:
        total, nonembedding = transformer_counts(*GPT2[name], GPT2_VOCAB, context=GPT2_CONTEXT)
        return Sizes(total, nonembedding, None)
    match = _PYTHIA_NAME.match(name)
    if match is None:
        return None
    size, v0 = match["size"], bool(match["v0"])
    if size in PYTHIA_OLD_NAMES and not match["v11"]:
        size, v0 = PYTHIA_OLD_NAMES[size], True
    if size not in PYTHIA or (v0 and match["v11"]):
        return None
    total, nonembedding = PYTHIA[size]
    per_step = 2 * PYTHIA_TOKENS_PER_STEP if v0 and size in V0_LARGE_BATCH else PYTHIA_TOKENS_PER_STEP
    return Sizes(total, nonembedding, _pythia_tokens(revision, per_step))


def _pythia_tokens(revision: str, per_step: int) -> int | None:
    if revision == "main":
        return PYTHIA_TOTAL_TOKENS
    step = step_of(revision)
    return None if step is None else step * per_step
