"""`harness compute --params N [--tokens D | --flops C] [--run RUN_DIR]`: training compute arithmetic."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    c = subparsers.add_parser("compute", help="training compute, the 20-tokens rule and the Chinchilla frontier",
                              description="C = 6 N D; tokens default to 20 per parameter. Numbers accept K/M/B/T suffixes.")
    c.add_argument("--params", required=True, help="parameters N, e.g. 7e9 or 7B")
    group = c.add_mutually_exclusive_group()
    group.add_argument("--tokens", help="training tokens D")
    group.add_argument("--flops", help="training compute C in FLOPs (D = C / 6N)")
    c.add_argument("--run", type=Path, help="use this run's own Chinchilla fit (fits.parquet) for the frontier")
    c.add_argument("--task", help="with --run: which task's fit (default: the first)")
    c.set_defaults(func=_compute)


def _compute(args: argparse.Namespace) -> int:
    from harness.analysis import compute

    n = compute.parse_count(args.params, "--params")
    tokens = compute.parse_count(args.tokens, "--tokens") if args.tokens else None
    flops = compute.parse_count(args.flops, "--flops") if args.flops else None
    fit_params, source = (None, "")
    if args.run is not None:
        fit_params, source = compute.run_fit_params(args.run, args.task)
    print(compute.format_summary(compute.summarize(n, tokens, flops, fit_params, source)))
    return 0
