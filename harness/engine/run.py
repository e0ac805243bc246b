"""`harness run`: config -> plan -> driver -> requests -> aggregate -> scores (-> analyze).

Exit codes: 0 every shard done, 1 finished with failed shards (listed), 2 bad input,
130 interrupted (written shards stay; the same command resumes).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from harness.results import manifest as mf
from harness.config import Sweep
from harness.errors import UserError
from harness.plan.shards import Plan, build_plan
from harness.plan.preflight import preflight
from harness.engine.progress import Progress
from harness.results.store import (SCORES_SCHEMA, read_table, samples_path, samples_table,
                             table_from_rows, write_atomic)


def check_output_dir(sweep: Sweep) -> Path:
    """The output folder must be a folder we may write, holding no results of another sweep."""
    run_dir = sweep.output_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"output path {str(run_dir)!r} is a file; pass a folder with --out")
    probe = run_dir if run_dir.exists() else next((p for p in run_dir.parents if p.exists()), Path("."))
    if not probe.is_dir():
        raise UserError(f"output path {str(run_dir)!r} lies under the file {str(probe)!r}; pass a folder with --out")
    if not os.access(probe, os.W_OK):
        raise UserError(f"output folder {str(run_dir)!r} is not writable; pass another folder with --out")
    previous = mf.read_manifest(run_dir)
    if previous and previous.get("identity") is not None:
        mine = json.loads(json.dumps(mf.sweep_identity(sweep)))
        if previous["identity"] != mine:
            raise UserError(f"output folder {str(run_dir)!r} holds results of a different sweep "
                            f"({previous.get('sweep', {}).get('source')}); pass a new folder with --out")
    return run_dir


def _base_manifest(sweep: Sweep, plan: Plan) -> dict:
    return {"sweep": mf.sweep_record(sweep), "identity": mf.sweep_identity(sweep),
            "versions": mf.package_versions(), "git_commit": mf.git_commit(),
            "environment": mf.recorded_environment(dict(os.environ)),
            "tasks": {n: {"num_fewshot": b.num_fewshot, "output_type": b.output_type,
                          "documents": len(b.doc_ids())} for n, b in plan.tasks.items()}}


def _shard_entries(plan: Plan, state, reused: set[str], status_default: str) -> list[dict]:
    entries = []
    for shard in plan.shards:
        outcome = state.outcomes.get(shard.key) if state else None
        status = "reused" if shard.key in reused else (outcome.status if outcome else status_default)
        entries.append({"key": shard.key, "model": shard.replica.name, "revision": shard.replica.revision,
                        "task": shard.task, "documents": len(shard.doc_ids), "requests": shard.n_requests,
                        "status": status, "seconds": round(outcome.seconds, 4) if outcome else None,
                        "attempts": outcome.attempts if outcome else 0,
                        "error": outcome.error if outcome else None,
                        "worker": outcome.worker if outcome else None})
    return entries


def run_sweep(sweep: Sweep, analyze: bool = True, stream=None) -> int:
    stream = stream or sys.stderr
    from harness.engine.driver import Driver, RunState

    started = time.monotonic()
    run_dir = check_output_dir(sweep)
    plan = build_plan(sweep)
    preflight(plan)
    pending = plan.pending(run_dir)
    reused = {s.key for s in plan.shards} - {s.key for s in pending}
    print(f"harness: {len(plan.shards)} shards over {len(plan.replicas)} model revisions x "
          f"{len(plan.tasks)} tasks; reusing {len(reused)} finished shards, running {len(pending)}", file=stream)
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = mf.read_manifest(run_dir) or {}
    manifest = _base_manifest(sweep, plan)
    state = RunState(replicas=dict(previous.get("replicas") or {}))
    last_write = [0.0]

    def save(status: str) -> None:
        manifest.update(status=status, replicas=state.replicas, cluster=state.resources, events=state.events,
                        shards=_shard_entries(plan, state, reused, "pending"))
        mf.write_manifest(run_dir, manifest)

    def on_shard_done() -> None:
        # Bounded rewrite rate: the Parquet files are the truth, the manifest is the index.
        if time.monotonic() - last_write[0] > 2.0:
            last_write[0] = time.monotonic()
            save("running")

    save("running")
    progress = Progress(Counter(s.replica.key for s in pending), sum(s.n_requests for s in pending),
                        reused=len(reused), stream=stream)
    try:
        if pending:
            Driver(plan, run_dir, progress, state, on_shard_done).execute(pending)
            progress.close()
    except KeyboardInterrupt:
        progress.close()
        save("interrupted")
        print(f"harness: interrupted; {sum(o.status == 'done' for o in state.outcomes.values())} shards "
              f"written this run stay in {run_dir}; run the same command to resume", file=stream)
        return 130
    finally:
        _shutdown_ray()
    summary = finalize(plan, run_dir, state)
    manifest["timing"] = _timing(state, started)
    failed = [e for e in _shard_entries(plan, state, reused, "pending") if e["status"] == "failed"]
    save("failed" if failed else "done")
    print_table(summary, stream)
    for entry in failed[:20]:
        print(f"harness: failed shard {entry['key']} ({entry['model']}@{entry['revision'] or 'main'} "
              f"{entry['task']}): {entry['error']}", file=stream)
    if analyze and summary is not None and not summary.empty:
        _analyze(run_dir, stream)
    print(f"harness: results in {run_dir}", file=stream)
    return 1 if failed else 0


def _shutdown_ray() -> None:
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def _timing(state, started: float) -> dict:
    wall = time.monotonic() - started
    phase = (state.scoring_ended or 0) - (state.scoring_started or 0)
    busy = state.busy_seconds / (state.slots * phase) if state.slots and phase > 0 else None
    return {"wall_seconds": round(wall, 3), "scoring_phase_seconds": round(phase, 3),
            "shard_seconds": round(state.busy_seconds, 3), "slots": state.slots,
            "busy_fraction": round(busy, 4) if busy is not None else None}


def finalize(plan: Plan, run_dir: Path, state):
    """Samples and scores for every (model, revision, task) whose shards are all written."""
    from harness.results.metrics import aggregate_group

    requests = read_table(run_dir / "requests")
    if requests.empty:
        write_atomic(table_from_rows([], SCORES_SCHEMA), run_dir / "scores.parquet")
        return None
    keys = {s.key for s in plan.shards}
    requests = requests[requests["shard"].isin(keys)]
    expected: dict[tuple, set] = defaultdict(set)
    for shard in plan.shards:
        expected[(shard.replica.key, shard.task)].add(shard.key)
    replicas = {r.key: r for r in plan.replicas}
    score_rows = []
    for (replica_key, task), group in _groups(requests, replicas):
        if set(group["shard"].unique()) != expected.get((replica_key, task), set()):
            continue  # incomplete: some shards failed; no partial score is ever written
        replica = replicas[replica_key]
        result = aggregate_group(plan.tasks[task], group.to_dict("records"), plan.sweep.bootstrap_iters)
        samples = [{"model": replica.name, "revision": replica.revision, "task": task, **s} for s in result.samples]
        write_atomic(samples_table(samples), samples_path(run_dir, replica.name, replica.revision, task))
        params = state.replicas.get(replica_key, {})
        for row in result.metrics:
            score_rows.append({"model": replica.name, "revision": replica.revision, "task": task, **row,
                               "n_params": params.get("n_params") or replica.spec.n_params,
                               "n_params_nonembedding": params.get("n_params_nonembedding")
                               or replica.spec.n_params_nonembedding,
                               "tokens_trained": replica.tokens_trained})
    table = table_from_rows(score_rows, SCORES_SCHEMA)
    write_atomic(table, run_dir / "scores.parquet")
    return table.to_pandas()


def _groups(requests, replicas):
    requests = requests.assign(_replica=requests["model"] + "@" + requests["revision"].fillna("main"))
    for (replica_key, task), group in requests.groupby(["_replica", "task"], sort=True):
        if replica_key in replicas:
            yield (replica_key, task), group


def print_table(scores, stream) -> None:
    """A short table: the headline metric of each task per model revision."""
    if scores is None or scores.empty:
        print("harness: no complete (model, task) results to score", file=stream)
        return
    headline = ("acc", "exact_match", "bits_per_byte")
    rows = scores[scores["metric"].isin(headline)].copy()
    if rows.empty:
        rows = scores
    rows["model"] = rows["model"] + "@" + rows["revision"].fillna("main")
    suffix = rows["filter"].map(lambda f: "" if f == "none" else f",{f}")
    rows["col"] = rows["task"] + ":" + rows["metric"] + suffix
    table = rows.pivot_table(index="model", columns="col", values="value", aggfunc="first")
    # Revisions in training order (step128 before step1024), not in string order.
    from harness.plan.models import step_of

    table = table.loc[sorted(table.index, key=lambda k: (k.rsplit("@", 1)[0], step_of(k.rsplit("@", 1)[1]) or 0, k))]
    table.columns.name = None
    print(table.to_string(na_rep="-", float_format=lambda v: f"{v:.4g}"), file=stream)


def _analyze(run_dir: Path, stream) -> None:
    try:
        from harness.analysis.analyze import analyze_run
    except ImportError:
        return  # analysis module not installed in this build
    try:
        analyze_run(run_dir)
        print(f"harness: analysis written to {run_dir / 'report.md'}", file=stream)
    except UserError as exc:
        print(f"harness: analysis skipped: {exc}", file=stream)
