"""`harness run [SWEEP.yaml] [flags]`: evaluate every model of a sweep on every task."""

from __future__ import annotations

import argparse

from harness.cli.common import add_sweep_arguments, sweep_from_args

# The codes are harness.engine.run's EXIT_* (not imported here: the engine takes a fifth of a
# second to import, and `--help` should not wait for it); README, "Running a sweep", says the same.
EXIT_CODES = """exit codes:
  0    every shard done (and analysed)
  1    finished with failed shards (listed, and in manifest.json)
  2    bad input (one line naming the culprit; nothing written), or the folder is in use by another driver
  3    scores written but the analysis failed (rerun `harness analyze RUN_DIR`)
  4    unexpected error, disk full included (one line; traceback in RUN_DIR/error.log)
  130  interrupted by Ctrl-C; 143 stopped by SIGTERM (written shards stay; the same command resumes)"""


def register(subparsers) -> None:
    run = subparsers.add_parser("run", help="evaluate every model of a sweep on every task",
                                description="Evaluate every model of a sweep on every task.",
                                epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sweep_arguments(run)
    run.add_argument("--no-analyze", action="store_true", help="skip fits, plots and report")
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from harness.engine.run import run_command

    return run_command(sweep_from_args(args), analyze=not args.no_analyze)
