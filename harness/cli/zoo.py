"""`harness zoo build` and `harness zoo list`: the embedded model ladder."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    zoo = subparsers.add_parser("zoo", help="build or list the embedded model ladder")
    verbs = zoo.add_subparsers(dest="zoo_command", required=True)

    build = verbs.add_parser("build", help="train the ladder (seeded; ~20 min on 2 CPU cores)")
    build.add_argument("--out", default="zoo", help="folder to write <size>/step<N>/ into (default: zoo)")
    build.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                       help="cpu trains the committed ladder; cuda trains a larger one with the same recipe")
    build.add_argument("--seed", type=int, default=0, help="seed of weights and data order (default: 0)")
    build.add_argument("--workers", type=int, default=2,
                       help="sizes trained in parallel processes on CPU, one thread each (default: 2)")
    build.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: 1 with workers)")
    build.add_argument("--schedule", choices=("wsd", "cosine"), default=None,
                       help="wsd: warmup-stable-decay, a cooldown branched at every budget so each checkpoint is "
                            "a finished run of that length (the committed ladder); cosine: one decay per size, "
                            "checkpoints along it (default: wsd)")
    build.add_argument("--cooldown-fraction", type=float, default=0.2,
                       help="wsd: share of each budget's steps spent cooling down (default: 0.2)")
    build.add_argument("--budgets", type=_steps, default=None, metavar="N,N,...",
                       help="checkpoint steps (wsd: budgets) for every size, e.g. 256,512,1024,2048,4096 "
                            "(default: the CPU ladder's IsoFLOP design, each size its own budgets on shared "
                            "compute levels plus step4096; the cuda ladder's total/2^k)")
    build.add_argument("--sizes", type=_names, default=None, metavar="NAME,...",
                       help="train only these sizes of the ladder, e.g. zoo-1,zoo-5 (default: all)")
    build.set_defaults(func=_build)

    listing = verbs.add_parser("list", help="show the checkpoints of a ladder folder")
    listing.add_argument("--root", default="zoo", help="ladder folder (default: zoo)")
    listing.set_defaults(func=_list)


def _steps(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected whole numbers of steps separated by commas") from None
    if min(steps) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: steps must be positive")
    return steps


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _build(args: argparse.Namespace) -> int:
    from harness.zoo.ladder import build, recipe

    ladder = recipe(args.device, args.schedule, args.cooldown_fraction, args.budgets, args.sizes)
    build(args.out, device=args.device, seed=args.seed, ladder=ladder, threads=args.threads, workers=args.workers)
    return 0


def format_rows(rows: list[dict]) -> str:
    header = ("name", "revision", "params", "non-embedding", "tokens")
    body = [(r["name"], r["revision"], f"{r['n_params']:,}", f"{r['n_params_nonembedding']:,}",
             f"{r['tokens_trained']:,}") for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    lines = ["  ".join(str(x).ljust(w) if i < 2 else str(x).rjust(w) for i, (x, w) in enumerate(zip(line, widths)))
             for line in (header, *body)]
    return "\n".join(lines)


def _list(args: argparse.Namespace) -> int:
    from harness.zoo.ladder import list_ladder

    rows = list_ladder(args.root)
    if not rows:
        print(f"no checkpoints under {args.root} (expected <size>/step<N>/harness.json)")
        return 1
    print(format_rows(rows))
    return 0
