"""Tiny models, a tokenizer and tasks of all three lm-eval output types, built on the fly.

No hub: the tokenizer is trained offline on Python's own documentation (`pydoc_data.topics`),
models are random-initialised Llamas saved as safetensors, task data is written as JSONL.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

TASK_NAMES = ("tiny_ppl", "tiny_mc", "tiny_gen")


def corpus() -> list[str]:
    from pydoc_data.topics import topics

    return [text for _, text in sorted(topics.items())]


def build_tokenizer(vocab_size: int = 384):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus()[:60], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>")


def build_model(folder: Path, tokenizer, hidden: int, layers: int, seed: int) -> Path:
    """A random Llama of the given shape, saved with its tokenizer as safetensors."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def build_tasks(folder: Path, n_docs: int = 12) -> Path:
    """Three tasks (rolling perplexity, 4-way multiple choice, generation) in one folder."""
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    # Perplexity documents: paragraphs from the end of the corpus (the tokenizer trains on the start).
    paragraphs = [p.strip() for t in corpus()[60:] for p in t.split("\n\n") if len(p.strip()) > 200]
    _write_jsonl(folder / "ppl.jsonl", [{"text": p[:700]} for p in paragraphs[:n_docs]])
    mc_rows = []
    for _ in range(n_docs + 5):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        wrong = rng.sample([x for x in range(2, 19) if x != a + b], 3)
        choices = [str(a + b)] + [str(w) for w in wrong]
        rng.shuffle(choices)
        mc_rows.append({"question": f"{a} plus {b} is", "choices": choices, "label": choices.index(str(a + b))})
    _write_jsonl(folder / "mc_test.jsonl", mc_rows[:n_docs])
    _write_jsonl(folder / "mc_train.jsonl", mc_rows[n_docs:])
    gen_rows = [{"q": f"{a}+{b}=", "a": str(a + b)} for a, b in
                ((rng.randint(10, 99), rng.randint(10, 99)) for _ in range(n_docs + 5))]
    _write_jsonl(folder / "gen_test.jsonl", gen_rows[:n_docs])
    _write_jsonl(folder / "gen_train.jsonl", gen_rows[n_docs:])
    yamls = {
        "tiny_ppl": f"""task: tiny_ppl
dataset_path: json
dataset_kwargs:
  data_files:
    test: {folder / 'ppl.jsonl'}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
""",
        "tiny_mc": f"""task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {folder / 'mc_test.jsonl'}
    train: {folder / 'mc_train.jsonl'}
test_split: test
fewshot_split: train
num_fewshot: 2
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
  - metric: acc_norm
""",
        "tiny_gen": f"""task: tiny_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {folder / 'gen_test.jsonl'}
    train: {folder / 'gen_train.jsonl'}
test_split: test
fewshot_split: train
num_fewshot: 2
output_type: generate_until
doc_to_text: "{{{{q}}}}"
doc_to_target: "{{{{a}}}}"
target_delimiter: ""
fewshot_delimiter: "\\n"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 4
  do_sample: false
metric_list:
  - metric: exact_match
""",
    }
    for name, text in yamls.items():
        (folder / f"{name}.yaml").write_text(text)
    return folder
