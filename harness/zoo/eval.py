"""Reference evaluation of a zoo ladder with lm-eval itself (HFLM on CPU): the figures behind the
ladder's claims (zoo/README.md, tests/integration/test_ladder_claims.py).

Requests are built by lm-eval's own tasks and scored by lm-eval's HFLM; metrics come from the
task's `process_results`. Added, as in the results contract: `target_loglik` (log-likelihood of the
gold target given the same prompt; of the gold choice; of the whole document) and, for rolling
perplexity, `nll_per_token`.

    python -m harness.zoo.eval --root zoo --out zoo/eval.json
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from harness.zoo.ladder import list_ladder

TASKS_DIR = Path(__file__).resolve().parents[2] / "tasks"  # harness/zoo/eval.py -> <repo>/tasks
FEWSHOT_TASKS = ("zoo_arith_2d_add", "zoo_arith_2d_sub", "zoo_arith_3d_add", "zoo_recall", "zoo_largest")
PPL_TASK = "zoo_english"
FEWSHOT_SEED = 1234


@lru_cache(maxsize=1)
def _task_manager():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR))  # indexing lm-eval's task folders takes seconds: once


def load_tasks(names: list[str]) -> dict:
    """Fresh task objects (building requests mutates them)."""
    return _task_manager().load(names)["tasks"]


def make_lm(folder: str | Path, batch_size: int = 16):
    """float32 compute: with the stored bf16 dtype HFLM's log-softmax is bf16 too and a document's
    log-likelihood comes out rounded to ~1% (seen: -466.0, -524.0), too coarse to order the ladder."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(folder), device="cpu", batch_size=batch_size, dtype="float32")


def _instance(doc, doc_id: int, task_name: str, context: str, continuation: str):
    from lm_eval.api.instance import Instance

    return Instance(request_type="loglikelihood", doc=doc, arguments=(context, continuation), idx=0,
                    metadata=(task_name, doc_id, 1))


def score_task(lm, task, limit: int | None = None) -> dict:
    """Per-document metrics of one task: {"metrics": {name: value}, "per_doc": {name: [...]}}."""
    task.set_fewshot_seed(seed=FEWSHOT_SEED)
    task.build_all_requests(limit=limit, samples=None, rank=0, world_size=1)
    kind = task.instances[0].request_type
    by_doc = _answer_requests(lm, task, kind)
    doc_ids = sorted(by_doc)
    per_doc = _process_results(task, by_doc, doc_ids)
    per_doc.update(_target_logliks(lm, task, kind, by_doc, doc_ids))
    metrics = _aggregate(task, kind, per_doc, len(doc_ids))
    if kind == "loglikelihood_rolling":
        # the perplexity metrics' per-document items are (loglik, weight) pairs; keep the scalars only
        per_doc = {k: per_doc[k] for k in ("target_loglik", "n_tokens")}
    return {"metrics": metrics, "per_doc": {k: [float(x) for x in v] for k, v in per_doc.items()}, "n": len(doc_ids)}


def _answer_requests(lm, task, kind: str) -> dict[int, list]:
    """Run the task's requests through the model, apply its filters; the answered instances by doc id."""
    instances = task.instances
    if kind == "generate_until":
        outputs = lm.generate_until(instances)
    elif kind == "loglikelihood":
        outputs = lm.loglikelihood(instances)
    else:
        outputs = lm.loglikelihood_rolling(instances)
    for inst, out in zip(instances, outputs):
        inst.resps = [out]
    task.apply_filters()
    by_doc: dict[int, list] = defaultdict(list)
    for inst in instances:
        by_doc[inst.doc_id].append(inst)
    return by_doc


def _process_results(task, by_doc: dict[int, list], doc_ids: list[int]) -> dict[str, list]:
    """The task's own per-document metrics (its `process_results`), as lists in doc-id order."""
    per_doc: dict[str, list] = defaultdict(list)
    for doc_id in doc_ids:
        group = sorted(by_doc[doc_id], key=lambda i: i.idx)
        doc = group[0].doc
        for name, value in task.process_results(doc, [i.filtered_resps["none"] for i in group]).items():
            per_doc[name].append(value)
    return per_doc


def _target_logliks(lm, task, kind: str, by_doc: dict[int, list], doc_ids: list[int]) -> dict[str, list]:
    """`target_loglik` per document (and `n_tokens` for rolling perplexity)."""
    if kind == "generate_until":
        # Target log-likelihood: the gold answer as the continuation of the very prompt generated from.
        golds = [_instance(by_doc[d][0].doc, d, task.config.task, by_doc[d][0].arguments[0],
                           task.config.target_delimiter + str(task.doc_to_target(by_doc[d][0].doc))) for d in doc_ids]
        return {"target_loglik": [ll for ll, _ in lm.loglikelihood(golds)]}
    if kind == "loglikelihood":
        return {"target_loglik": [
            sorted(by_doc[d], key=lambda i: i.idx)[task.doc_to_target(by_doc[d][0].doc)].resps[0][0] for d in doc_ids]}
    return {"target_loglik": [by_doc[d][0].resps[0] for d in doc_ids],
            "n_tokens": [len(lm.tok_encode(task.doc_to_target(by_doc[d][0].doc))) for d in doc_ids]}


def _aggregate(task, kind: str, per_doc: dict[str, list], n_docs: int) -> dict[str, float]:
    """The task's aggregations over the documents, plus mean target_loglik (and nll_per_token)."""
    aggregation = task.aggregation()
    metrics = {name: float(aggregation[name](per_doc[name])) for name in aggregation if name in per_doc}
    metrics["target_loglik"] = sum(per_doc["target_loglik"]) / n_docs
    if kind == "loglikelihood_rolling":
        metrics["nll_per_token"] = -sum(per_doc["target_loglik"]) / sum(per_doc["n_tokens"])
    return metrics


@dataclass(frozen=True)
class EvalJob:
    """One checkpoint's evaluation, sent to a worker process: which tasks, on how many documents."""

    root: str  # the ladder folder
    checkpoint: dict  # a `list_ladder` row: name, revision, step, parameter and token counts
    tasks: tuple[str, ...]
    limit: int | None  # documents per task; None = all
    threads: int | None  # torch threads of the worker; None leaves torch's default

    @property
    def folder(self) -> Path:
        return Path(self.root) / self.checkpoint["name"] / self.checkpoint["revision"]


def evaluate_checkpoint(job: EvalJob) -> list[dict]:
    """All tasks of one checkpoint: one result row per task (the checkpoint's row, the task, its scores)."""
    import torch

    if job.threads:
        torch.set_num_threads(job.threads)
    lm = make_lm(job.folder)
    names = list(job.tasks)
    tasks = load_tasks(names)
    row = job.checkpoint
    keys = ("name", "revision", "step", "n_params", "n_params_nonembedding", "tokens_trained")
    out = []
    for name in names:
        scored = score_task(lm, tasks[name], job.limit)
        out.append({**{k: row[k] for k in keys}, "task": name, **scored})
        print(f"{row['name']} {row['revision']} {name} {json.dumps(scored['metrics'])}", flush=True)
    return out


def evaluate_ladder(root: str | Path, limit: int | None = None, workers: int = 1) -> dict:
    """Perplexity on every checkpoint, the few-shot tasks at the step every size shares (shared_step)."""
    import lm_eval

    jobs = eval_jobs(root, limit, workers)
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = [r for rs in pool.map(evaluate_checkpoint, jobs) for r in rs]
    else:
        results = [r for job in jobs for r in evaluate_checkpoint(job)]
    return {"lm_eval_version": lm_eval.__version__, "limit": limit, "device": "cpu", "dtype": "float32",
            "fewshot_seed": FEWSHOT_SEED, "results": results}


def eval_jobs(root: str | Path, limit: int | None = None, workers: int = 1) -> list[EvalJob]:
    """One job per checkpoint of the ladder: perplexity everywhere, the few-shot tasks at shared_step."""
    rows = list_ladder(root)
    compare = shared_step(rows)
    return [EvalJob(root=str(root), checkpoint=row,
                    tasks=(PPL_TASK,) + (FEWSHOT_TASKS if row["step"] == compare[row["name"]] else ()),
                    limit=limit, threads=1 if workers > 1 else None)
            for row in rows]


def shared_step(rows: list[dict]) -> dict[str, int]:
    """Per size, the step the sizes are compared at: the largest step every size has (the ladder's
    shared budget, zoo/design.py), else each size's last.

    >>> shared_step([{"name": "a", "step": 4}, {"name": "a", "step": 9}, {"name": "b", "step": 4}])
    {'a': 4, 'b': 4}
    """
    steps: dict[str, set[int]] = {}
    for r in rows:
        steps.setdefault(r["name"], set()).add(r["step"])
    common = set.intersection(*steps.values()) if steps else set()
    return {name: max(common) if common else max(own) for name, own in steps.items()}


def figures_markdown(report: dict) -> str:
    """The README's tables: sizes x tasks at the shared step, and held-out loss per size x compute level."""
    rows = report["results"]
    sizes = sorted({r["name"] for r in rows}, key=lambda n: next(r["n_params"] for r in rows if r["name"] == n))
    compare = shared_step([r for r in rows if r["task"] == PPL_TASK])
    at = {(r["name"], r["task"]): r for r in rows if r["step"] == compare[r["name"]]}
    head = ["size", "non-emb. params", "params", "tokens", "English loss (nats/token)", "bits/byte"]
    for task in FEWSHOT_TASKS:
        short = task.removeprefix("zoo_")
        head += [f"{short} {'acc' if task == 'zoo_largest' else 'EM'}", f"{short} target loglik"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name in sizes:
        eng = at[(name, PPL_TASK)]
        cells = [name, f"{eng['n_params_nonembedding']:,}", f"{eng['n_params']:,}", f"{eng['tokens_trained'] / 1e6:.2f}M",
                 f"{eng['metrics']['nll_per_token']:.3f}", f"{eng['metrics']['bits_per_byte']:.3f}"]
        for task in FEWSHOT_TASKS:
            m = at[(name, task)]["metrics"] if (name, task) in at else None
            cells += ["–", "–"] if m is None else [f"{100 * m['acc' if task == 'zoo_largest' else 'exact_match']:.1f}%",
                                                   f"{m['target_loglik']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + loss_by_compute(rows, sizes, compare))


def loss_by_compute(rows: list[dict], sizes: list[str], compare: dict[str, int]) -> list[str]:
    """Held-out loss, one column per compute level C = 6 N D (N non-embedding; to the nearest quarter
    decade, the design's spacing) and one for the shared step: the IsoFLOP profiles are the columns."""
    eng = [r for r in rows if r["task"] == PPL_TASK]

    def quarters(r) -> float:  # log10 C in quarter decades
        return 4 * math.log10(6 * r["n_params_nonembedding"] * r["tokens_trained"])

    def level(r) -> float:
        return round(quarters(r)) / 4

    def on_level(r) -> bool:  # the shared budget sits on a level only by chance
        return abs(quarters(r) - round(quarters(r))) < 0.04

    levels = sorted({level(r) for r in eng if r["step"] != compare[r["name"]] or on_level(r)})
    shared = {r["name"]: r for r in eng if r["step"] == compare[r["name"]]}
    common = len({r["tokens_trained"] for r in shared.values()}) == 1
    last = f"{next(iter(shared.values()))['tokens_trained'] / 1e6:.2f}M tokens (every size)" if common else "last"
    lines = ["| held-out loss (nats/token), steps in brackets | " + " | ".join(f"C = 1e{x:g}" for x in levels)
             + f" | {last} |", "|" + " --- |" * (len(levels) + 2)]
    for name in sizes:
        cell = {level(r): f"{r['metrics']['nll_per_token']:.3f} ({r['step']})" for r in eng
                if r["name"] == name and (r["step"] != compare[name] or on_level(r))}
        own = shared.get(name)
        last = f"{own['metrics']['nll_per_token']:.3f}" if own else ""
        lines.append(f"| {name} | " + " | ".join(cell.get(x, "") for x in levels) + f" | {last} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description="Evaluate a zoo ladder with lm-eval (HFLM, CPU).")
    parser.add_argument("--root", default="zoo")
    parser.add_argument("--out", default="zoo/eval.json")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--workers", type=int, default=1, help="checkpoints evaluated in parallel processes")
    parser.add_argument("--table", action="store_true", help="print the README tables of an existing --out file")
    args = parser.parse_args()
    if args.table:
        print(figures_markdown(json.loads(Path(args.out).read_text())))
        return
    report = evaluate_ladder(args.root, args.limit, args.workers)
    Path(args.out).write_text(json.dumps(report, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
