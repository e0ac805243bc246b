"""`harness zoo build` and `harness zoo list`: the embedded model ladder."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    zoo = subparsers.add_parser("zoo", help="build or list the embedded model ladder")
    verbs = zoo.add_subparsers(dest="zoo_command", required=True)

    build = verbs.add_parser("build", help="train the ladder (seeded; ~9 min on 2 CPU cores)")
    build.add_argument("--out", default="zoo", help="folder to write <size>/step<N>/ into (default: zoo)")
    build.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                       help="cpu trains the committed ladder; cuda trains a larger one with the same recipe")
    build.add_argument("--seed", type=int, default=0, help="seed of weights and data order (default: 0)")
    build.add_argument("--workers", type=int, default=2,
                       help="sizes trained in parallel processes on CPU, one thread each (default: 2)")
    build.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: 1 with workers)")
    build.set_defaults(func=_build)

    listing = verbs.add_parser("list", help="show the checkpoints of a ladder folder")
    listing.add_argument("--root", default="zoo", help="ladder folder (default: zoo)")
    listing.set_defaults(func=_list)


def _build(args: argparse.Namespace) -> int:
    from harness.zoo.ladder import build

    build(args.out, device=args.device, seed=args.seed, threads=args.threads, workers=args.workers)
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
