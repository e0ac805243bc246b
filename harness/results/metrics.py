"""Requests -> per-document samples -> scores, with lm-eval's own metric code.

Reads the request rows a run wrote (no model, no Ray), puts each response on a copy of the
lm-eval `Instance` it answers (the originals are shared by every model of a run), applies the
task's filters, calls `process_results` per document and lm-eval's aggregation, exactly the path
`simple_evaluate` takes. Beside each discrete metric it stores a continuous twin per document
(target log-likelihood, Brier score, edit distance).
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.plan.requests import TARGET_REQUEST_IDX, BuiltTask
from harness.results.schemas import sample_column

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
        out["n_choices"] = len(logliks)  # the analysis's chance level (analysis/chance.py)
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
    """Metrics of one task for one model revision from its request rows (all documents present).

    Reads `built` without changing it: its Instances (and the lm-eval Task's own list of them) are
    shared by every model of the run, so responses go on private copies of them.
    """
    by_key = {(r["doc_id"], r["request_idx"]): r for r in rows}
    by_doc = answered_instances(built, by_key)
    filter_keys = apply_filters(built.task, by_doc)
    raw: dict[tuple[str, str], list] = defaultdict(list)
    samples = [document_sample(built, doc_id, requests, filter_keys, by_key, raw)
               for doc_id, requests in by_doc.items()]
    metrics = lm_eval_aggregate(built.task, raw, bootstrap_iters) + continuous_metrics(built, samples)
    return GroupResult(samples, metrics)


def answered_instances(built: BuiltTask, by_key: dict) -> dict[int, list]:
    """doc_id -> copies of the task's Instances that have a row (by request index), each holding
    its response; documents in doc_id order. The harness's target requests are left out."""

    by_doc: dict[int, list] = defaultdict(list)
    for inst in built.instances:
        row = by_key.get((inst.doc_id, inst.idx))
        if inst.idx != TARGET_REQUEST_IDX and row is not None:
            answered = copy.copy(inst)  # shares the (read-only) doc and arguments, not the responses
            answered.resps = [_response(row)]
            answered.filtered_resps = {}
            by_doc[inst.doc_id].append(answered)
    return {doc_id: sorted(by_doc[doc_id], key=lambda x: x.idx) for doc_id in sorted(by_doc)}


def apply_filters(task: Any, by_doc: dict[int, list]) -> list[str]:
    """The task's filter pipelines, run on the given Instances (never on the Task's own list, which
    `task.apply_filters()` would use); returns the filter names, in the task's order."""
    instances = [inst for requests in by_doc.values() for inst in requests]
    if not instances:
        return []
    for ensemble in task._filters:
        ensemble.apply(instances)
    return list(instances[0].filtered_resps)


def document_sample(built: BuiltTask, doc_id: int, requests: list, filter_keys: list[str],
                    by_key: dict, raw: dict) -> dict:
    """One document's sample row: a float column per scalar metric and filter (`metric` for the
    "none" filter, else `metric,filter`) plus the continuous twins. Appends every metric value,
    scalar or not, to `raw` under (metric, filter) for lm-eval's aggregation."""
    task = built.task
    doc = requests[0].doc
    sample: dict[str, Any] = {"doc_id": doc_id}
    for filter_key in filter_keys:
        responses = [r.filtered_resps[filter_key] for r in requests]
        for metric, value in task.process_results(doc, responses).items():
            raw[(metric, filter_key)].append(value)
            if isinstance(value, (bool, int, float)):
                sample[sample_column(metric, filter_key)] = float(value)
    doc_rows = {r.idx: by_key[(doc_id, r.idx)] for r in requests}
    sample.update(_continuous(built, doc, requests, doc_rows, by_key.get((doc_id, TARGET_REQUEST_IDX))))
    return sample


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
