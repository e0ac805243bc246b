"""`harness run | plan | ls | analyze | import | compute | submit | zoo`: one module per verb, mapped here.

Bad input never becomes a traceback: a `UserError` prints one line and exits 2.
"""

from __future__ import annotations

import os
import sys

from harness.cli import analyze, compute, import_, ls, plan, run, submit, zoo
from harness.cli.common import Parser, add_sweep_arguments, sweep_from_args  # noqa: F401 (the verbs' shared API)
from harness.errors import UserError

# Each verb's module exposes register(subparsers); the order is the order of `harness --help`.
VERBS = (run, plan, ls, analyze, import_, compute, submit, zoo)


def build_parser() -> Parser:
    parser = Parser(prog="harness", description="Evaluate model ladders on lm-eval tasks with Ray; fit scaling curves.")
    sub = parser.add_subparsers(dest="verb", required=True, parser_class=Parser)
    for verb in VERBS:
        verb.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # lm-eval draws a tqdm bar per task build; tqdm reads this when it is imported.
    os.environ.setdefault("TQDM_DISABLE", "1")
    args = build_parser().parse_args(argv)
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
