"""`harness run [SWEEP.yaml] [flags]`: evaluate every model of a sweep on every task."""

from __future__ import annotations

import argparse

from harness.cli.common import add_sweep_arguments, sweep_from_args


def register(subparsers) -> None:
    run = subparsers.add_parser("run", help="evaluate every model of a sweep on every task")
    add_sweep_arguments(run)
    run.add_argument("--no-analyze", action="store_true", help="skip fits, plots and report")
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from harness.engine.run import run_sweep

    return run_sweep(sweep_from_args(args), analyze=not args.no_analyze)
