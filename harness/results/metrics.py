"""Requests -> per-document samples -> scores, with lm-eval's own metric code.

Reads the request rows a run wrote (no model, no Ray), puts each response back on the lm-eval
`Instance` it answers, applies the task's filters, calls `process_results` per document and
lm-eval's aggregation, exactly the path `simple_evaluate` takes. Beside each discrete metric it
stores a continuous twin per document (target log-likelihood, Brier score, edit distance).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.results.store import TARGET_REQUEST_IDX
from harness.plan.requests import BuiltTask

CONTINUOUS = ("target_loglik", "brier", "edit_distance")


@dataclass(frozen=True)
class GroupResult:
    """Samples and metric rows for one (model, revision, task)."""

    samples: list[dict]
    metrics: list[dict]  # metric, filter, value, stderr, n


def levenshtein(a: Sequence, b: Sequence) -> int:
    """Edit distance (insertions, deletions, substitutions), O(len(a) * len(b))."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def brier_score(logliks: Sequence[float], gold: int) -> float:
    """Brier score of the softmax over choice log-likelihoods against the one-hot gold choice."""
    top = max(logliks)
    weights = [math.exp(ll - top) for ll in logliks]
    total = sum(weights)
    return sum((w / total - (1.0 if i == gold else 0.0)) ** 2 for i, w in enumerate(weights))


def _response(row: dict) -> Any:
    kind = row["request_type"]
    if kind == "loglikelihood":
        return (row["loglikelihood"], bool(row["is_greedy"]))
    if kind == "loglikelihood_rolling":
        return row["loglikelihood"]
    return row["generation"]


def _gold_index(task: Any, doc: dict) -> int | None:
    gold = task.doc_to_target(doc)
    if isinstance(gold, list):
        gold = gold[0] if gold else None
    if isinstance(gold, str):
        choices = task.doc_to_choice(doc)
        return choices.index(gold) if gold in choices else None
    return int(gold) if gold is not None else None


def _continuous(built: BuiltTask, doc: dict, requests: list, rows: dict, target_row: dict | None) -> dict:
    """The per-document continuous twins of the task's discrete metrics."""
    task = built.task
    out: dict[str, Any] = {}
    if built.output_type == "multiple_choice":
        logliks = [rows[r.idx]["loglikelihood"] for r in requests]
        gold = _gold_index(task, doc)
        if gold is not None and 0 <= gold < len(logliks):
            out["target_loglik"] = logliks[gold]
            out["brier"] = brier_score(logliks, gold)
    elif built.output_type == "loglikelihood_rolling":
        text = task.doc_to_target(doc)
        out["target_loglik"] = rows[requests[0].idx]["loglikelihood"]
        out["n_tokens"] = rows[requests[0].idx]["n_tokens"]
        out["n_words"] = task.count_words(text)
        out["n_bytes"] = task.count_bytes(text)
    elif built.output_type == "generate_until":
        if target_row is not None:
            out["target_loglik"] = target_row["loglikelihood"]
        target = task.doc_to_target(doc)
        target = target[0] if isinstance(target, list) and target else target
        generation = rows[requests[0].idx]["generation"] or ""
        out["edit_distance"] = float(levenshtein(generation.strip(), str(target).strip()))
    return out


def aggregate_group(built: BuiltTask, rows: list[dict], bootstrap_iters: int) -> GroupResult:
    """Metrics of one task for one model revision from its request rows (all documents present)."""
    task = built.task
    by_key = {(r["doc_id"], r["request_idx"]): r for r in rows}
    by_doc: dict[int, list] = defaultdict(list)
    for inst in built.instances:
        if inst.idx != TARGET_REQUEST_IDX and (inst.doc_id, inst.idx) in by_key:
            # Instances are shared by every model of the sweep: reset before reuse.
            inst.resps = [_response(by_key[(inst.doc_id, inst.idx)])]
            inst.filtered_resps = {}
            by_doc[inst.doc_id].append(inst)
    instances = [i for doc_id in sorted(by_doc) for i in sorted(by_doc[doc_id], key=lambda x: x.idx)]
    for ensemble in task._filters:
        ensemble.apply(instances)
    raw: dict[tuple[str, str], list] = defaultdict(list)
    samples = []
    filter_keys = list(instances[0].filtered_resps) if instances else []
    for doc_id in sorted(by_doc):
        requests = sorted(by_doc[doc_id], key=lambda x: x.idx)
        doc = requests[0].doc
        sample: dict[str, Any] = {"doc_id": doc_id}
        for filter_key in filter_keys:
            metrics = task.process_results(doc, [r.filtered_resps[filter_key] for r in requests])
            for metric, value in metrics.items():
                raw[(metric, filter_key)].append(value)
                if isinstance(value, (bool, int, float)) and not isinstance(value, complex):
                    column = metric if filter_key == "none" else f"{metric},{filter_key}"
                    sample[column] = float(value)
        doc_rows = {idx: by_key[(doc_id, idx)] for idx in (r.idx for r in requests)}
        sample.update(_continuous(built, doc, requests, doc_rows, by_key.get((doc_id, TARGET_REQUEST_IDX))))
        samples.append(sample)
    metrics = lm_eval_aggregate(task, raw, bootstrap_iters) + continuous_metrics(built, samples)
    return GroupResult(samples, metrics)


def lm_eval_aggregate(task: Any, raw: dict, bootstrap_iters: int) -> list[dict]:
    """lm-eval's own aggregation and stderr for the raw per-document values."""
    # A private helper, but it is the exact function simple_evaluate calls; reimplementing it
    # would drift from lm-eval's numbers (the parity test pins this down).
    from lm_eval.evaluator_utils import _compute_task_aggregations

    values, n = _compute_task_aggregations(task, raw, bootstrap_iters)
    rows = []
    for (metric, filter_key), items in raw.items():
        value = values.get(f"{metric},{filter_key}")
        stderr = values.get(f"{metric}_stderr,{filter_key}")
        rows.append({"metric": metric, "filter": filter_key, "value": _float(value),
                     "stderr": _float(stderr), "n": len(items)})
    return rows


def continuous_metrics(built: BuiltTask, samples: list[dict]) -> list[dict]:
    """Means (with standard errors) of the continuous twins, and nats per token for perplexity."""
    rows = []
    for name in CONTINUOUS:
        values = [s[name] for s in samples if s.get(name) is not None]
        if values:
            mean = sum(values) / len(values)
            var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else float("nan")
            rows.append({"metric": name, "filter": "none", "value": mean,
                         "stderr": math.sqrt(var / len(values)) if var == var else None, "n": len(values)})
    if built.output_type == "loglikelihood_rolling":
        tokens = sum(s.get("n_tokens") or 0 for s in samples)
        if tokens:
            nll = -sum(s["target_loglik"] for s in samples) / tokens
            rows.append({"metric": "nll_per_token", "filter": "none", "value": nll, "stderr": None,
                         "n": len(samples)})
    return rows


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None  # lm-eval writes "N/A" for a stderr it cannot compute
    return out
