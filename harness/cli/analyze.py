"""`harness analyze RUN_DIR`: fits, plots and report from a run's Parquet files (no cluster, no GPU)."""
from __future__ import annotations

import argparse
from contextlib import nullcontext
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("analyze", help="fit scaling curves to a run's Parquet results",
                              description="Read RUN_DIR's Parquet files; write fits.parquet, plots/ and report.md.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, or its bucket URL (s3://..., gs://...)")
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples for intervals (default 200)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--predict", action="append", default=[], metavar="N[:D]",
                   help="also predict every task at N non-embedding parameters (and D training tokens), e.g. "
                        "30e9 or 30e9:600e9; repeatable; writes predictions.parquet")
    p.set_defaults(func=_analyze)


def _analyze(args: argparse.Namespace) -> int:
    from harness.analysis.analyze import analyze_run
    from harness.errors import UserError

    from harness.analysis.predict.run import parse_target
    from harness.results.lock import run_lock
    from harness.results.mirror import working_folder

    if args.n_boot < 0:
        raise UserError(f"--n-boot must be >= 0, got {args.n_boot}")
    try:
        targets = tuple(parse_target(t) for t in args.predict)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    with working_folder(args.run_dir) as run_dir:  # a bucket: its working copy, uploaded at the end
        # Held as `harness run` and `harness import` hold it: a run finishing meanwhile would delete
        # the analysis of its older scores while this one writes it.
        with run_lock(run_dir) if run_dir.is_dir() else nullcontext():
            summary = analyze_run(run_dir, n_boot=args.n_boot, seed=args.seed, targets=targets)
        _print_summary(summary, run_dir)
    return 0


def _print_summary(summary, run_dir: Path) -> None:
    print(f"wrote {summary.fits_path}, {summary.report_path} and {len(summary.plots)} plots")
    chosen = summary.backtests[summary.backtests["chosen"]] if len(summary.backtests) else summary.backtests
    if len(chosen):
        inside = ((chosen["pi_low"] <= chosen["measured"]) & (chosen["measured"] <= chosen["pi_high"])).sum()
        print(f"back-test of the largest size ({len(chosen)} metrics, chosen methods): {int(inside)} inside their "
              f"90% intervals; see backtest.parquet and the report")
    if len(summary.predictions):
        print(f"wrote {run_dir / 'predictions.parquet'} ({len(summary.predictions)} predictions)")
    for reason in summary.skipped:
        print(f"skipped: {reason}")
