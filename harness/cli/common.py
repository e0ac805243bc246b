"""What the verbs share: the argument parser class, the sweep flags, and the sweep they build."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from harness.config import REPO_ROOT, Sweep, apply_overrides, load_sweep
from harness.errors import UserError

DEFAULT_SWEEP = REPO_ROOT / "sweeps" / "default.yaml"


def default_sweep() -> Path:
    """sweeps/default.yaml of the checkout; one line that says what to do where there is none."""
    if not DEFAULT_SWEEP.is_file():
        raise UserError(f"no sweep given and this install has no default sweep ({DEFAULT_SWEEP}); pass a sweep "
                        "file, or --models and --tasks (or install with `pip install -e .` from a checkout)")
    return DEFAULT_SWEEP


class Parser(argparse.ArgumentParser):
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
        None if args.models and args.tasks else load_sweep(default_sweep()))
    sweep = apply_overrides(
        base, models=args.models, tasks=args.tasks, include_path=args.include_path, limit=args.limit,
        num_fewshot=args.num_fewshot, output=args.out, address=args.address, workers=args.workers,
        device=args.device, backend=args.backend, batch_size=args.batch_size,
        docs_per_shard=args.docs_per_shard, seed=args.seed)
    if getattr(args, "allow_pickle", False):
        sweep = replace(sweep, models=tuple(replace(m, allow_pickle=True) for m in sweep.models))
    return sweep
