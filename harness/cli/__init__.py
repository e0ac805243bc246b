"""`harness run | plan | analyze | submit | zoo | compute | ls`: verbs mapped to functions.

Bad input never becomes a traceback: a `UserError` prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from harness.config import REPO_ROOT, Sweep, apply_overrides, load_sweep
from harness.errors import UserError

DEFAULT_SWEEP = REPO_ROOT / "sweeps" / "default.yaml"
# Verbs owned by their own modules; each exposes register(subparsers).
_VERB_MODULES = ("harness.cli.analyze", "harness.cli.submit", "harness.cli.zoo")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own usage errors: exit 2, one line
        self.exit(2, f"harness: error: {message} (see `{self.prog} --help`)\n")


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by run, plan and submit; each overrides the sweep file."""
    parser.add_argument("sweep", nargs="?", help="sweep YAML (default: sweeps/default.yaml)")
    parser.add_argument("--models", help="comma-separated local folders or hub ids, PATH_OR_ID@REVISION allowed")
    parser.add_argument("--tasks", help="comma-separated task names")
    parser.add_argument("--include-path", help="extra task folders, comma-separated")
    parser.add_argument("--limit", type=int, help="documents per task")
    parser.add_argument("--num-fewshot", type=int, help="few-shot examples (tasks fixed at 0 stay 0)")
    parser.add_argument("--out", help="output folder (default: results/<sweep name>)")
    parser.add_argument("--address", help="Ray cluster address (`auto` inside a Ray job)")
    parser.add_argument("--workers", type=int, help="worker slots (default: one per CPU core or per GPU)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="device for the workers")
    parser.add_argument("--backend", choices=("hf", "fast"),
                        help="scoring backend: fast (default, ours) or hf (lm-eval's HFLM, the reference)")
    parser.add_argument("--batch-size", type=int, help="requests per forward batch")
    parser.add_argument("--docs-per-shard", type=int, help="documents per shard")
    parser.add_argument("--seed", type=int, help="few-shot seed")
    parser.add_argument("--allow-pickle", action="store_true", help="allow pickle (.bin) checkpoints")


def sweep_from_args(args: argparse.Namespace) -> Sweep:
    base = load_sweep(args.sweep) if args.sweep else (
        None if args.models and args.tasks else load_sweep(DEFAULT_SWEEP))
    sweep = apply_overrides(
        base, models=args.models, tasks=args.tasks, include_path=args.include_path, limit=args.limit,
        num_fewshot=args.num_fewshot, output=args.out, address=args.address, workers=args.workers,
        device=args.device, backend=args.backend, batch_size=args.batch_size,
        docs_per_shard=args.docs_per_shard, seed=args.seed)
    if getattr(args, "allow_pickle", False):
        from dataclasses import replace

        sweep = replace(sweep, models=tuple(replace(m, allow_pickle=True) for m in sweep.models))
    return sweep


def cmd_run(args: argparse.Namespace) -> int:
    from harness.engine.run import run_sweep

    return run_sweep(sweep_from_args(args), analyze=not args.no_analyze)


def cmd_plan(args: argparse.Namespace) -> int:
    sweep = sweep_from_args(args)
    if args.simulate:
        from harness.scheduling.simulator import format_simulation, simulate_sweep

        result = simulate_sweep(sweep, gpus=args.gpus, gpu_mem_gb=args.gpu_mem_gb, shards=args.shards,
                                cpus=args.cpus)
        if args.json:
            import dataclasses

            print(json.dumps(dataclasses.asdict(result), indent=2, default=str))
        else:
            print(format_simulation(result))
        return 0
    from harness.plan.shards import build_plan, summarize

    plan = build_plan(sweep)
    summary = summarize(plan, sweep.output_dir if sweep.output_dir.is_dir() else None)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    print(f"{summary['shards']} shards ({summary['shards_done']} already done), {summary['requests']} requests, "
          f"~{summary['tokens']:,} tokens, ~{summary['cost_flops']:.3g} FLOPs")
    for name, task in summary["tasks"].items():
        print(f"  task {name}: {task['documents']} documents, {task['requests']} requests, "
              f"{task['num_fewshot']}-shot, {task['output_type']}")
    print(f"  {'model@revision':<32} {'params':>12} {'shards':>7} {'requests':>9} {'tokens':>11} {'cost FLOPs':>11}")
    for row in summary["models"]:
        key = f"{row['model']}@{row['revision'] or 'main'}"
        params = f"{row['n_params']:,}" if row["n_params"] else "?"
        print(f"  {key:<32} {params:>12} {row['shards']:>7} {row['requests']:>9} {row['tokens']:>11,} "
              f"{row['cost_flops']:>11.3g}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    if args.what == "tasks":
        from harness.plan.requests import quiet_libraries, task_manager

        quiet_libraries()
        paths = [REPO_ROOT / "tasks"] + [Path(p) for p in (args.include_path or "").split(",") if p]
        manager = task_manager(paths)
        local = sorted(n for n in manager.all_tasks
                       if any(str(p.resolve()) in str(manager.task_index[n].yaml_path or "") for p in paths)
                       ) if hasattr(manager, "task_index") else []
        print(f"tasks under {', '.join(str(p) for p in paths)}:")
        for name in local:
            print(f"  {name}")
        if args.all:
            print("lm-eval built-in tasks:")
            for name in sorted(set(manager.all_tasks) - set(local)):
                print(f"  {name}")
        else:
            print(f"(and {len(manager.all_tasks) - len(local)} lm-eval built-in tasks: `harness ls tasks --all`)")
        return 0
    sweep = load_sweep(args.sweep or DEFAULT_SWEEP)
    from harness.plan.shards import make_replicas

    print(f"models in {sweep.source}:")
    for replica in make_replicas(sweep):
        tokens = f"{replica.tokens_trained:,}" if replica.tokens_trained else "?"
        params = f"{replica.n_params_estimate:,}" if replica.n_params_estimate else "?"
        print(f"  {replica.key:<32} params {params:>12}  tokens {tokens:>14}  {replica.checkpoint.source}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description="Evaluate model ladders on lm-eval tasks with Ray; fit scaling curves.")
    sub = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="evaluate every model of a sweep on every task")
    add_sweep_arguments(run)
    run.add_argument("--no-analyze", action="store_true", help="skip fits, plots and report")
    run.set_defaults(func=cmd_run)
    plan = sub.add_parser("plan", help="shards, requests, tokens and cost per model, without loading weights")
    add_sweep_arguments(plan)
    plan.add_argument("--json", action="store_true", help="print JSON")
    plan.add_argument("--simulate", action="store_true", help="simulate the scheduler on a GPU cluster")
    plan.add_argument("--gpus", type=int, default=8, help="simulated GPUs")
    plan.add_argument("--gpu-mem-gb", type=float, default=80.0, help="memory per simulated GPU")
    plan.add_argument("--cpus", type=int, help="simulated CPU slots (with --gpus 0)")
    plan.add_argument("--shards", type=int, default=10_000, help="synthetic shards when data is offline")
    plan.set_defaults(func=cmd_plan)
    ls = sub.add_parser("ls", help="list what a sweep can name")
    ls.add_argument("what", choices=("tasks", "models"))
    ls.add_argument("sweep", nargs="?", help="sweep whose models to list (default sweep)")
    ls.add_argument("--include-path", help="extra task folders, comma-separated")
    ls.add_argument("--all", action="store_true", help="also list lm-eval's built-in tasks")
    ls.set_defaults(func=cmd_ls)
    for module in _VERB_MODULES:
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return parser


def main(argv: list[str] | None = None) -> int:
    # lm-eval draws a tqdm bar per task build; tqdm reads this when it is imported.
    os.environ.setdefault("TQDM_DISABLE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
