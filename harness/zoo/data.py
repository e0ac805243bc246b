"""Tokenizer and training stream of the zoo: English plus synthetic task-format text, seeded.

Every size sees the same stream in the same order (a Pythia-style ladder), so differences between
sizes are differences of capacity, not of data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from harness.zoo.corpus import Document
from harness.zoo.formats import synthetic_block

EOS = "<|endoftext|>"


@dataclass(frozen=True)
class Mix:
    """Share of training sequences drawn from each source (sums to 1)."""

    english: float = 0.43
    arith: float = 0.45
    recall: float = 0.04
    largest: float = 0.08

    def items(self) -> list[tuple[str, float]]:
        return [("english", self.english), ("arith", self.arith), ("recall", self.recall), ("largest", self.largest)]


def train_tokenizer(texts: list[str], vocab_size: int = 1024):
    """Byte-level BPE with every digit its own token (numbers then align with their arithmetic).

    A space before a number stays attached to its first digit (" 41" is "Ġ4", "1"): the answer's
    first token then carries information, and a recalled value starts right after the colon.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r" ?[0-9]"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, bos_token=EOS, unk_token=EOS)


def tokenizer_texts(train_docs: list[Document], seed: int, n_synthetic: int = 3000) -> list[str]:
    rng = random.Random(f"tok-{seed}")
    synth = [synthetic_block(rng, kind) for kind in ("arith", "recall", "largest") for _ in range(n_synthetic // 3)]
    return [d.text for d in train_docs] + synth


def _english_tokens(tokenizer, docs: list[Document], rng: random.Random) -> Iterator[int]:
    encoded = [tokenizer.encode(d.text) + [tokenizer.eos_token_id] for d in docs]
    while True:  # epochs, each in a fresh order
        order = list(range(len(encoded)))
        rng.shuffle(order)
        for i in order:
            yield from encoded[i]


def _synthetic_tokens(tokenizer, kind: str, rng: random.Random) -> Iterator[int]:
    while True:
        texts = [synthetic_block(rng, kind) for _ in range(256)]
        for ids in tokenizer(texts)["input_ids"]:
            yield from ids
            yield tokenizer.eos_token_id


def build_stream(tokenizer, train_docs: list[Document], n_seqs: int, seq_len: int, seed: int, mix: Mix) -> np.ndarray:
    """n_seqs rows of seq_len + 1 token ids; each row comes whole from one source, chosen by the mix."""
    rng = random.Random(f"mix-{seed}")
    sources = {
        "english": _english_tokens(tokenizer, train_docs, random.Random(f"english-{seed}")),
        **{k: _synthetic_tokens(tokenizer, k, random.Random(f"{k}-{seed}")) for k in ("arith", "recall", "largest")},
    }
    names, weights = zip(*mix.items())
    out = np.empty((n_seqs, seq_len + 1), dtype=np.int32)
    for row in range(n_seqs):
        source = sources[rng.choices(names, weights=weights)[0]]
        out[row] = [next(source) for _ in range(seq_len + 1)]
    return out
