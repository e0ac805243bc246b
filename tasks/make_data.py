"""Writes the zoo task suite's JSONL files (tasks/zoo/data/) from a fixed seed.

Run from anywhere: `python tasks/make_data.py [--out DIR]`. Output is byte-identical on every run
(the English passages depend on the Python version's own documentation; see zoo/README.md).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from harness.zoo.corpus import english_documents, heldout_passages
from harness.zoo.formats import (
    ARITH_OPS, N_FEWSHOT, N_TEST, RECALL_PAIRS, SPLIT_SEED, arith_question, arith_split, largest_sample, recall_sample,
)

DATA_DIR = Path(__file__).resolve().parent / "zoo" / "data"
MAX_PASSAGES = 400


def _arith(op_name: str) -> dict[str, list[dict]]:
    op = ARITH_OPS[op_name]
    test, shots = arith_split(op_name)
    row = lambda a, b: {"a": a, "b": b, "question": arith_question(op, a, b), "answer": str(op.answer(a, b))}
    return {"test": [row(a, b) for a, b in test], "train": [row(a, b) for a, b in shots]}


def _recall() -> dict[str, list[dict]]:
    rng = random.Random(f"{SPLIT_SEED}-recall")
    docs = []
    for _ in range(N_TEST):
        text, answers = recall_sample(rng, RECALL_PAIRS, 1)
        docs.append({"question": text, "answer": str(answers[-1])})
    return {"test": docs}


def _largest(split: str, n: int) -> list[dict]:
    rng = random.Random(f"{SPLIT_SEED}-largest-{split}")
    docs = []
    for _ in range(n):
        question, numbers, gold = largest_sample(rng)
        docs.append({"question": question, "choices": [str(x) for x in numbers], "label": gold})
    return docs


def _english() -> dict[str, list[dict]]:
    _, heldout = english_documents()
    passages = heldout_passages(heldout)
    random.Random(f"{SPLIT_SEED}-english").shuffle(passages)
    return {"test": [{"text": p} for p in passages[:MAX_PASSAGES]]}


def all_files() -> dict[str, list[dict]]:
    """File name -> rows, for every file of the suite."""
    out: dict[str, list[dict]] = {}
    for op_name in ARITH_OPS:
        for split, rows in _arith(op_name).items():
            out[f"arith_{op_name}.{split}.jsonl"] = rows
    out["recall.test.jsonl"] = _recall()["test"]
    out["largest.test.jsonl"] = _largest("test", N_TEST)
    out["largest.train.jsonl"] = _largest("train", N_FEWSHOT)
    out["english.test.jsonl"] = _english()["test"]
    return out


def write(out_dir: Path = DATA_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rows in all_files().items():
        path = out_dir / name
        path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    for p in write(parser.parse_args().out):
        print(p)
