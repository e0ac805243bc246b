"""Tiny models and a tokenizer built on the fly, offline, for backend tests and benchmarks.

The tokenizer is a byte-level BPE trained in ~0.1 s on English that ships with Python
(`pydoc_data.topics`), so nothing is downloaded. Models have random weights: the backends under
test must agree with each other on any weights, trained or not.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=4)
def english_text() -> str:
    """About 465 KB of English prose and code from the standard library's help topics."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def make_tokenizer(vocab_size: int = 1024):
    """A byte-level BPE tokenizer with digits split one per token, wrapped for transformers.

    EOS is `<|endoftext|>`; pad is the same token, as for GPT-2/Pythia-style tokenizers.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([english_text()], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )


def make_llama(tokenizer, d: int = 64, layers: int = 2, ffn: int = 176, heads: int = 4,
               max_len: int = 256, seed: int = 0, tied: bool = True, init: float = 0.02):
    """A LlamaForCausalLM with random weights, in eval mode, fp32."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=d, intermediate_size=ffn, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=max_len,
        tie_word_embeddings=tied, initializer_range=init, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )
    return LlamaForCausalLM(cfg).eval()


def make_neox(tokenizer, d: int = 64, layers: int = 2, heads: int = 4, max_len: int = 128, seed: int = 0):
    """A GPTNeoXForCausalLM (Pythia's architecture) with random weights, in eval mode, fp32."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=d, intermediate_size=4 * d, num_hidden_layers=layers,
        num_attention_heads=heads, max_position_embeddings=max_len, rotary_pct=0.25,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    return GPTNeoXForCausalLM(cfg).eval()
