"""`harness ls tasks|models [SWEEP.yaml]`: what a sweep can name."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import default_sweep
from harness.config import bundled, load_sweep


def register(subparsers) -> None:
    ls = subparsers.add_parser("ls", help="list what a sweep can name")
    ls.add_argument("what", choices=("tasks", "models"))
    ls.add_argument("sweep", nargs="?", help="sweep whose models to list (default sweep)")
    ls.add_argument("--include-path", help="extra task folders, comma-separated")
    ls.add_argument("--all", action="store_true", help="also list lm-eval's built-in tasks")
    ls.set_defaults(func=cmd_ls)


def cmd_ls(args: argparse.Namespace) -> int:
    return _list_models(args) if args.what == "models" else _list_tasks(args)


def _list_tasks(args: argparse.Namespace) -> int:
    from harness.plan.requests import quiet_libraries, task_manager

    quiet_libraries()
    paths = [p for p in (bundled("tasks"),) if p] + [Path(p) for p in (args.include_path or "").split(",") if p]
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


def _list_models(args: argparse.Namespace) -> int:
    from harness.plan.models import model_revisions

    sweep = load_sweep(args.sweep or default_sweep())
    print(f"models in {sweep.source}:")
    for model in model_revisions(sweep):
        tokens = f"{model.tokens_trained:,}" if model.tokens_trained else "?"
        params = f"{model.n_params_estimate:,}" if model.n_params_estimate else "?"
        print(f"  {model.key:<32} params {params:>12}  tokens {tokens:>14}  {model.checkpoint.source}")
    return 0
