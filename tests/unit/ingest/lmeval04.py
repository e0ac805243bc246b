"""A realistic lm-eval 0.4 output folder, written by hand: results_<ts>.json and samples_<task>_<ts>.jsonl
in the layout and string forms of lm-eval 0.4's EvaluationTracker (responses and targets as strings,
`arguments` as gen_args_i/arg_j, a group with its subtasks, "N/A" stderrs)."""

from __future__ import annotations

import json
from pathlib import Path

STAMP = "2025-01-02T03-04-05.678901"
MODEL = "EleutherAI/pythia-160m"
REVISION = "step3000"
# Multiple choice: (gold index, choice log-likelihoods) for three documents.
MC_DOCS = [(0, [-1.0, -2.0, -3.0]), (2, [-0.5, -0.7, -1.5]), (1, [-4.0, -3.9, -5.0])]
GEN_DOCS = [("81", "81"), ("102", "12"), ("7", "")]  # (gold, raw generation)


def results(model_args="pretrained=EleutherAI/pythia-160m,revision=step3000,dtype=float32") -> dict:
    return {
        "results": {
            "arith": {"alias": "arith", "acc,none": 0.5, "acc_stderr,none": 0.1, "acc_norm,none": 0.6,
                      "acc_norm_stderr,none": 0.11},
            "arith_mc": {"alias": " - arith_mc", "name": "arith_mc", "sample_len": 3, "acc,none": 2 / 3,
                         "acc_stderr,none": 0.33, "acc_norm,none": 1 / 3, "acc_norm_stderr,none": "N/A"},
            "arith_gen": {"alias": " - arith_gen", "exact_match,strict-match": 1 / 3,
                          "exact_match_stderr,strict-match": 0.33, "exact_match,flexible": 2 / 3,
                          "exact_match_stderr,flexible": "N/A"},
        },
        "groups": {"arith": {"alias": "arith", "acc,none": 0.5, "acc_stderr,none": 0.1}},
        "group_subtasks": {"arith": ["arith_mc", "arith_gen"], "arith_mc": [], "arith_gen": []},
        "configs": {
            "arith_mc": {"task": "arith_mc", "output_type": "multiple_choice", "doc_to_target": "label",
                         "doc_to_choice": "{{choices}}", "target_delimiter": " "},
            "arith_gen": {"task": "arith_gen", "output_type": "generate_until", "doc_to_target": "{{a}}",
                          "target_delimiter": " "},
        },
        "versions": {"arith": None, "arith_mc": 1.0, "arith_gen": 1.0},
        "n-shot": {"arith_mc": 0, "arith_gen": 3},
        "higher_is_better": {"arith_mc": {"acc": True, "acc_norm": True}, "arith_gen": {"exact_match": True}},
        "n-samples": {"arith_gen": {"original": 3, "effective": 3}, "arith_mc": {"original": 5, "effective": 3}},
        "config": {"model": "hf", "model_args": model_args, "model_num_parameters": 162322944,
                   "model_dtype": "torch.float32", "model_revision": REVISION, "batch_size": 4, "device": "cpu",
                   "limit": 3, "bootstrap_iters": 100000},
        "git_hash": "abc123", "date": 1735787045.0, "lm_eval_version": "0.4.13",
        "model_name": MODEL, "model_name_sanitized": "EleutherAI__pythia-160m",
    }


def mc_lines() -> list[dict]:
    lines = []
    for doc_id, (gold, logliks) in enumerate(MC_DOCS):
        choices = [str(10 + i) for i in range(len(logliks))]
        args = {f"gen_args_{i}": {"arg_0": f"Q{doc_id}:", "arg_1": f" {c}"} for i, c in enumerate(choices)}
        resps = [[[str(ll), "False"]] for ll in logliks]
        best = max(range(len(logliks)), key=lambda i: logliks[i])
        lines.append({"doc_id": doc_id, "doc": {"q": f"Q{doc_id}", "choices": choices, "label": gold},
                      "target": str(gold), "arguments": args, "resps": resps,
                      "filtered_resps": [r[0] for r in resps], "filter": "none", "metrics": ["acc", "acc_norm"],
                      "doc_hash": "h", "prompt_hash": "p", "target_hash": "t",
                      "acc": float(best == gold), "acc_norm": float(best == gold)})
    return lines


def gen_lines() -> list[dict]:
    lines = []
    for doc_id, (gold, generation) in enumerate(GEN_DOCS):
        for filt, hit in (("strict-match", generation == gold), ("flexible", gold in generation or doc_id == 2)):
            lines.append({"doc_id": doc_id, "doc": {"q": f"{doc_id}+?=", "a": gold}, "target": gold,
                          "arguments": {"gen_args_0": {"arg_0": f"{doc_id}+?=", "arg_1": {"until": ["\n"]}}},
                          "resps": [[generation]], "filtered_resps": [generation], "filter": filt,
                          "metrics": ["exact_match"], "exact_match": float(hit)})
    return lines


def write_run(folder: Path, **kwargs) -> Path:
    """The folder lm-eval's --output_path would hold for one model; returns the results file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"results_{STAMP}.json"
    path.write_text(json.dumps(results(**kwargs), indent=2))
    for task, lines in (("arith_mc", mc_lines()), ("arith_gen", gen_lines())):
        (folder / f"samples_{task}_{STAMP}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path
