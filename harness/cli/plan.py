"""`harness plan [SWEEP.yaml] [--json] [--simulate ...]`: what a sweep will cost, before any weights load."""

from __future__ import annotations

import argparse
import dataclasses
import json

from harness.checkpoint import revision_label
from harness.cli.common import add_sweep_arguments, sweep_from_args


def register(subparsers) -> None:
    plan = subparsers.add_parser("plan", help="shards, requests, tokens and cost per model, without loading weights")
    add_sweep_arguments(plan)
    plan.add_argument("--json", action="store_true", help="print JSON")
    plan.add_argument("--simulate", action="store_true", help="simulate the scheduler on a GPU cluster")
    plan.add_argument("--gpus", type=int, default=8, help="simulated GPUs")
    plan.add_argument("--gpu-mem-gb", type=float, default=80.0, help="memory per simulated GPU")
    plan.add_argument("--cpus", type=int, help="simulated CPU slots (with --gpus 0)")
    plan.add_argument("--shards", type=int, default=10_000, help="synthetic shards when data is offline")
    plan.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    sweep = sweep_from_args(args)
    if args.simulate:
        from harness.scheduling.simulator import format_simulation, simulate_sweep

        result = simulate_sweep(sweep, gpus=args.gpus, gpu_mem_gb=args.gpu_mem_gb, shards=args.shards,
                                cpus=args.cpus)
        print(json.dumps(dataclasses.asdict(result), indent=2, default=str) if args.json
              else format_simulation(result))
        return 0
    from harness.plan.shards import build_plan, summarize
    from harness.results.store import written_shards

    plan = build_plan(sweep)
    summary = summarize(plan, written_shards(sweep.output_dir, plan.shards))
    print(json.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
    return 0


def format_summary(summary: dict) -> str:
    """The table `harness plan` prints: totals, one line per task, one line per model revision."""
    lines = [f"{summary['shards']} shards ({summary['shards_done']} already done), {summary['requests']} requests, "
             f"~{summary['tokens']:,} tokens, ~{summary['cost_flops']:.3g} FLOPs"]
    for name, task in summary["tasks"].items():
        lines.append(f"  task {name}: {task['documents']} documents, {task['requests']} requests, "
                     f"{task['num_fewshot']}-shot, {task['output_type']}")
    lines.append(f"  {'model@revision':<32} {'params':>12} {'shards':>7} {'requests':>9} {'tokens':>11} "
                 f"{'cost FLOPs':>11}")
    for row in summary["models"]:
        key = f"{row['model']}@{revision_label(row['revision'])}"
        params = f"{row['n_params']:,}" if row["n_params"] else "?"
        lines.append(f"  {key:<32} {params:>12} {row['shards']:>7} {row['requests']:>9} {row['tokens']:>11,} "
                     f"{row['cost_flops']:>11.3g}")
    return "\n".join(lines)
