"""A quick progress probe used while training the zoo (logging only; the claims are measured with lm-eval).

Teacher-forced: the answer counts as right when the greedy next token is right at every answer
position, which is what greedy decoding would produce up to the stop sequence.
"""

from __future__ import annotations

import random
from typing import Callable

import torch

from harness.zoo.formats import ARITH_OPS, arith_question, arith_split, recall_sample, RECALL_PAIRS


def probe_items(n: int = 100) -> dict[str, list[tuple[str, str]]]:
    """(prompt, answer) pairs in the suite's formats, from the held-out test items."""
    items: dict[str, list[tuple[str, str]]] = {}
    op = ARITH_OPS["2d_add"]
    test, shots = arith_split("2d_add")
    rng = random.Random(0)
    arith = []
    for a, b in test[:n]:
        context = "\n\n".join(f"{arith_question(op, x, y)} {op.answer(x, y)}" for x, y in rng.sample(shots, 3))
        arith.append((f"{context}\n\n{arith_question(op, a, b)}", str(op.answer(a, b))))
    items["add2"] = arith
    rng = random.Random(1)
    items["recall"] = [(text, str(ans[-1])) for text, ans in (recall_sample(rng, RECALL_PAIRS, 1) for _ in range(n))]
    return items


def make_probe(tokenizer, device: str = "cpu", n: int = 100) -> Callable[[torch.nn.Module], dict]:
    encoded = {
        task: [(tokenizer.encode(p), tokenizer.encode(" " + a)) for p, a in pairs] for task, pairs in probe_items(n).items()
    }

    @torch.no_grad()
    def probe(model: torch.nn.Module) -> dict:
        out = {}
        for task, pairs in encoded.items():
            hits, loglik = 0, 0.0
            for prompt, answer in pairs:
                ids = torch.tensor([prompt + answer], device=device)
                logp = torch.log_softmax(model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float(), -1)
                target = torch.tensor(answer, device=device)
                hits += int(bool((logp.argmax(-1) == target).all()))
                loglik += logp.gather(1, target[:, None]).sum().item()
            out[f"{task}_em"] = hits / len(pairs)
            out[f"{task}_ll"] = round(loglik / len(pairs), 3)
        return out

    return probe
