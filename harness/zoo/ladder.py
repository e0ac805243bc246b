"""The embedded model ladder: build it (seeded, offline) and list what a ladder folder holds.

Layout written by `build` and read by `list_ladder` (and by the run driver's local-model loader):
`<root>/<size>/step<N>/` with safetensors weights, tokenizer files and `harness.json`.
torch and transformers are imported only inside the functions that build, so listing stays cheap.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from harness.errors import UserError
from harness.zoo.data import Mix
from harness.zoo.design import IsoflopDesign

if TYPE_CHECKING:  # harness.zoo.train imports torch; it is imported where a build needs it
    from harness.zoo.corpus import Document
    from harness.zoo.train import SizeSpec, TrainConfig

_STEP = re.compile(r"^step(\d+)$")


@dataclass(frozen=True)
class Ladder:
    """A recipe: the sizes, the token budget, the schedule and the checkpoints. Sizes are SizeSpec kwargs."""

    sizes: tuple[dict, ...]
    total_steps: int
    n_checkpoints: int = 4  # at total/2^k: log-spaced token counts
    mix: Mix = field(default_factory=Mix)
    vocab_size: int = 1024
    batch_size: int = 16
    seq_len: int = 256
    english_docs: int | None = None  # use only the first N training documents (tests)
    # bf16 autocast for sizes at least this wide; off by default: it cost ~0.1 nats of held-out loss
    # at equal steps (the output head's logits are rounded too) and broke the ordering of the sizes.
    autocast_min_width: int | None = None
    # "cosine": one decay per size, checkpoints along it (the first committed ladder). "wsd": a stable run per
    # size and a cooldown branched at every checkpoint step, so each is a finished schedule (train.py).
    schedule: str = "cosine"
    warmup_steps: int = 50  # linear warm-up, the same number of steps for every size
    cooldown_fraction: float = 0.2  # WSD only: the last 20% of each budget's steps cool down
    budgets: tuple[int, ...] | None = None  # checkpoint steps chosen by hand; None: total/2^k
    # WSD only: each size's own budgets on shared compute levels (design.py); overrides budgets/total/2^k.
    design: IsoflopDesign | None = None

    def __post_init__(self) -> None:
        # total_steps is also the length of the stream, so it must reach the largest budget (and no further:
        # the cosine decays over exactly total_steps).
        if self.budgets is not None and (min(self.budgets) < 1 or max(self.budgets) != self.total_steps):
            raise ValueError(f"budgets {self.budgets}: expected positive steps, the largest equal to total_steps "
                             f"({self.total_steps}); use Ladder.with_budgets")
        longest = max(self.checkpoint_steps(), default=self.total_steps)
        if self.design is not None and longest != self.total_steps:
            raise ValueError(f"design budgets reach {longest} steps, not total_steps ({self.total_steps}); "
                             "use Ladder.with_design")

    def checkpoint_steps(self, size: dict | None = None) -> list[int]:
        """The checkpoint steps (WSD: budgets) of one size, or of every size when they share them."""
        if self.design is not None and self.schedule == "wsd":
            if size is None:
                return sorted(set().union(*self.steps_by_size().values()))
            return list(self.design.size_budgets(size, self.batch_size * self.seq_len))
        if self.budgets is not None:
            return sorted(set(self.budgets))
        return sorted({max(1, self.total_steps >> k) for k in range(self.n_checkpoints)})

    def steps_by_size(self) -> dict[str, list[int]]:
        return {s["name"]: self.checkpoint_steps(s) for s in self.sizes}

    def with_design(self, design: IsoflopDesign | None) -> Ladder:
        """The same recipe with each size's budgets from `design`; the stream reaches the longest."""
        if design is None:
            return dataclasses.replace(self, design=None)
        longest = max(max(design.size_budgets(s, self.batch_size * self.seq_len)) for s in self.sizes)
        return dataclasses.replace(self, design=design, budgets=None, total_steps=longest)

    def with_budgets(self, budgets: Sequence[int]) -> Ladder:
        """The same recipe with checkpoints (WSD: budgets) at these steps, trained up to the largest.

        The stream is built row by row from seeded generators, so a shorter or longer stream shares its
        first rows with this ladder's: a budget sees the same data whatever the other budgets are.
        """
        steps = tuple(sorted(set(int(b) for b in budgets)))
        return dataclasses.replace(self, budgets=steps, total_steps=max(steps), design=None)


# Peak learning rate = LR_TIMES_WIDTH / d_model: Adam's update size per hidden weight must shrink as
# 1/width to keep a layer's output change fixed (muP, Yang et al. 2022). WSD screens on this stream
# (zoo/README.md) found the best rates near 2e-2 at d=16 and 4-6e-3 at d=96, i.e. 0.3-0.5 / d; the
# cosine recipe's per-size rates (8e-3 .. 1.2e-2, not ordered by width) left the wider sizes slow in short runs.
LR_TIMES_WIDTH = 0.36
# The token embedding's peak rate, the same at every width (muP keeps it width-independent): the
# narrowest size's rate. At 0.36 / d it was the wide sizes' bottleneck early on (zoo/README.md).
EMBEDDING_LR = LR_TIMES_WIDTH / 16


def _size(name: str, d_model: int, n_layers: int, n_heads: int, d_ffn: int) -> dict:
    return dict(name=name, d_model=d_model, n_layers=n_layers, n_heads=n_heads, d_ffn=d_ffn,
                lr=LR_TIMES_WIDTH / d_model, embedding_lr=EMBEDDING_LR)


# Sizes span 54x in non-embedding parameters, all on one stream (45% of it arithmetic, 2-digit
# addition 35%); 1-layer models of <= 10K non-embedding parameters stay near chance on 2-digit
# addition. Every revision is a WSD run of exactly its budget (train.py); each size's budgets put it on
# shared compute levels (design.py), and step4096 is every size's. Batch 8 x 256 tokens.
CPU_LADDER = Ladder(
    sizes=(
        _size("zoo-1", 16, 1, 2, 64),
        _size("zoo-2", 24, 1, 2, 96),
        _size("zoo-3", 48, 1, 3, 192),
        _size("zoo-4", 64, 1, 4, 256),
        _size("zoo-5", 96, 2, 4, 256),
    ),
    total_steps=4096,
    n_checkpoints=5,
    batch_size=8,
    schedule="wsd",
).with_design(IsoflopDesign())

# `--schedule cosine` trains the first committed ladder's recipe: one cosine per size at the per-size
# rates it was tuned with (zoo/README.md, "Second round"), every parameter at the same rate.
COSINE_STEPS = 4096
COSINE_RATES = {"zoo-1": 1e-2, "zoo-2": 1e-2, "zoo-3": 1.2e-2, "zoo-4": 8e-3, "zoo-5": 1.2e-2,
                "zoo-6": 5e-3, "zoo-7": 4e-3, "zoo-8": 2e-3}


def cosine_sizes(sizes: Sequence[dict]) -> tuple[dict, ...]:
    """The sizes with the cosine recipe's rates and no embedding rate of their own."""
    return tuple({**{k: v for k, v in s.items() if k != "embedding_lr"}, "lr": COSINE_RATES[s["name"]]} for s in sizes)


# Same recipe, wider and longer, for a GPU (`zoo build --device cuda`); its three added sizes follow the
# rate rule but were never trained with it here (no GPU): a first run should screen their rates.
CUDA_LADDER = Ladder(
    sizes=CPU_LADDER.sizes
    + (
        _size("zoo-6", 128, 3, 4, 384),
        _size("zoo-7", 192, 4, 6, 512),
        _size("zoo-8", 384, 6, 6, 1024),
    ),
    total_steps=8192,
    n_checkpoints=6,
    batch_size=8,
    schedule="wsd",
)


def build(
    out_dir: str | Path = "zoo",
    device: str = "cpu",
    seed: int = 0,
    ladder: Ladder | None = None,
    threads: int | None = None,
    workers: int = 1,
    log: Callable[[str], None] = print,
    probe: bool = True,
) -> list[dict]:
    """Train every size of the ladder on one seeded stream and write its checkpoints under out_dir.

    `workers` > 1 trains sizes in parallel processes (CPU only), one thread each unless `threads`
    says otherwise; a size's result depends on the seed and its thread count, not on scheduling.
    Returns one record per checkpoint (held-out loss, probe figures, seconds), also written to
    `<out_dir>/build_log.jsonl`.
    """
    from harness.zoo.corpus import english_documents

    _check_device(device)
    ladder = ladder or (CUDA_LADDER if device == "cuda" else CPU_LADDER)
    cfg = _train_config(ladder)  # before any work: a bad schedule or budget is refused here
    out = Path(out_dir)
    work = _work_dir(out)
    work.mkdir(parents=True, exist_ok=True)
    train_docs, heldout_docs = english_documents()
    train_docs = train_docs[: ladder.english_docs]
    tokenizer = _write_tokenizer(work, train_docs, ladder.vocab_size, seed)
    _write_stream(work, tokenizer, train_docs, ladder, cfg, seed)
    _write_heldout(work, tokenizer, heldout_docs, cfg.seq_len)
    jobs = train_jobs(ladder, out, seed, device, threads, workers, probe, cfg)
    results = _run_train_jobs(jobs, workers, device, log)
    records = _write_build_log(out, ladder, results)
    _remove_work_dir(work)
    return records


@dataclass(frozen=True)
class TrainJob:
    """What a worker process needs to train one size from the files `build` left in <out_dir>/_build."""

    size: SizeSpec
    out_dir: str
    seed: int
    device: str
    checkpoint_steps: tuple[int, ...]
    threads: int | None  # torch threads of the worker; None leaves torch's default
    probe: bool  # log the teacher-forced probe at every checkpoint
    train_config: TrainConfig

    @property
    def work_dir(self) -> Path:
        return _work_dir(Path(self.out_dir))


def _work_dir(out: Path) -> Path:
    """Where `build` leaves the tokenizer, stream and held-out rows for the training workers."""
    return out / "_build"


def _check_device(device: str) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is visible; use --device cpu")


def _train_config(ladder: Ladder) -> TrainConfig:
    """The training settings of the ladder; UserError for a schedule or WSD budget it cannot train."""
    from harness.zoo.train import TrainConfig, cooldown_start

    try:
        cfg = TrainConfig(seq_len=ladder.seq_len, batch_size=ladder.batch_size,
                          autocast_min_width=ladder.autocast_min_width, warmup_steps=ladder.warmup_steps,
                          schedule=ladder.schedule, cooldown_fraction=ladder.cooldown_fraction)
        if cfg.schedule == "wsd":
            for budget in ladder.checkpoint_steps():
                cooldown_start(budget, cfg)
    except ValueError as exc:
        raise UserError(f"zoo build: {exc}") from None
    return cfg


def recipe(
    device: str = "cpu",
    schedule: str | None = None,
    cooldown_fraction: float = 0.2,
    budgets: Sequence[int] | None = None,
    sizes: Sequence[str] | None = None,
) -> Ladder:
    """The ladder `zoo build` trains: the device's recipe with the CLI's schedule, budgets and sizes."""
    ladder = CUDA_LADDER if device == "cuda" else CPU_LADDER
    design = ladder.design
    ladder = dataclasses.replace(ladder.with_design(None), schedule=schedule or ladder.schedule,
                                 cooldown_fraction=cooldown_fraction)
    if ladder.schedule == "cosine":  # one schedule per size, no design: the first CPU ladder's 4,096 steps
        steps = COSINE_STEPS if design is not None else ladder.total_steps
        ladder, design = dataclasses.replace(ladder, sizes=cosine_sizes(ladder.sizes), total_steps=steps), None
    if budgets:
        if min(budgets) < 1:
            raise UserError(f"--budgets {','.join(map(str, budgets))}: steps must be positive")
        ladder, design = ladder.with_budgets(budgets), None
    if sizes:
        known = [s["name"] for s in ladder.sizes]
        unknown = sorted(set(sizes) - set(known))
        if unknown:
            raise UserError(f"--sizes: no size {', '.join(unknown)} in this ladder (it has {', '.join(known)})")
        ladder = dataclasses.replace(ladder, sizes=tuple(s for s in ladder.sizes if s["name"] in sizes))
    return ladder.with_design(design) if design is not None else ladder


def _write_tokenizer(work: Path, train_docs: list[Document], vocab_size: int, seed: int):
    """Train the byte-level BPE on the training text (plus synthetic blocks) and save it under work."""
    from harness.zoo.data import tokenizer_texts, train_tokenizer

    tokenizer = train_tokenizer(tokenizer_texts(train_docs, seed), vocab_size)
    tokenizer.save_pretrained(work / "tokenizer")
    return tokenizer


def _write_stream(
    work: Path, tokenizer, train_docs: list[Document], ladder: Ladder, cfg: TrainConfig, seed: int
) -> None:
    """The one training stream every size reads, in order: total_steps x batch_size rows of seq_len + 1 ids."""
    import numpy as np

    from harness.zoo.data import build_stream

    stream = build_stream(tokenizer, train_docs, ladder.total_steps * cfg.batch_size, cfg.seq_len, seed, ladder.mix)
    np.save(work / "stream.npy", stream)


def _write_heldout(work: Path, tokenizer, heldout_docs: list[Document], seq_len: int) -> None:
    """Held-out passages, concatenated with EOS between them and cut into whole rows of seq_len + 1 ids."""
    import numpy as np

    from harness.zoo.corpus import heldout_passages

    held = [t for p in heldout_passages(heldout_docs) for t in tokenizer.encode(p) + [tokenizer.eos_token_id]]
    n_rows = len(held) // (seq_len + 1)
    np.save(work / "heldout.npy", np.asarray(held[: n_rows * (seq_len + 1)], dtype=np.int32).reshape(n_rows, -1))


def train_jobs(
    ladder: Ladder,
    out_dir: str | Path,
    seed: int,
    device: str,
    threads: int | None,
    workers: int,
    probe: bool,
    cfg: TrainConfig,
) -> list[TrainJob]:
    """One job per size, largest first (the longest job starts first when workers share the sizes)."""
    from harness.zoo.train import SizeSpec

    return [
        TrainJob(
            size=SizeSpec(**size),
            out_dir=str(out_dir),
            seed=seed,
            device=device,
            checkpoint_steps=tuple(ladder.checkpoint_steps(size)),
            threads=threads or (1 if workers > 1 else None),
            probe=probe,
            train_config=cfg,
        )
        for size in sorted(ladder.sizes, key=lambda s: -s["d_model"] * s["n_layers"])
    ]


def _run_train_jobs(jobs: list[TrainJob], workers: int, device: str, log: Callable[[str], None]) -> list[list[dict]]:
    """Train every job, in `workers` spawned processes on CPU (they log with print), else here in order."""
    if workers > 1 and device == "cpu":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(pool.map(_train_job, jobs))
    return [_train_job(job, log) for job in jobs]


def _write_build_log(out: Path, ladder: Ladder, results: list[list[dict]]) -> list[dict]:
    """All checkpoint records in ladder order, then by step; written to <out>/build_log.jsonl."""
    records = sorted((r for rs in results for r in rs), key=lambda r: (_size_order(ladder, r["size"]), r["step"]))
    with (out / "build_log.jsonl").open("w") as sink:
        sink.writelines(json.dumps(r) + "\n" for r in records)
    return records


def _remove_work_dir(work: Path) -> None:
    import shutil

    shutil.rmtree(work, ignore_errors=True)


def _size_order(ladder: Ladder, name: str) -> int:
    return [s["name"] for s in ladder.sizes].index(name)


def _train_job(job: TrainJob, log: Callable[[str], None] = print) -> list[dict]:
    """Train one size from the files `build` left in <out>/_build (runs in a worker process)."""
    import numpy as np
    import torch
    from transformers import PreTrainedTokenizerFast

    from harness.zoo.probe import make_probe
    from harness.zoo.train import train_size

    if job.threads:
        torch.set_num_threads(job.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(job.work_dir / "tokenizer")
    stream = np.load(job.work_dir / "stream.npy", mmap_mode="r")
    heldout = np.load(job.work_dir / "heldout.npy")
    probe_fn = make_probe(tokenizer, job.device) if job.probe else None
    return train_size(job.size, tokenizer, stream, heldout, list(job.checkpoint_steps), Path(job.out_dir), job.seed,
                      job.device, job.train_config, log, probe_fn)


def list_ladder(root: str | Path = "zoo") -> list[dict]:
    """One row per checkpoint: name, revision, n_params, n_params_nonembedding, tokens_trained, step."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"zoo folder {root} does not exist; build it with `harness zoo build --out {root}`")
    rows = []
    for meta_path in root.glob("*/step*/harness.json"):
        match = _STEP.match(meta_path.parent.name)
        if not match:
            continue
        meta = json.loads(meta_path.read_text())
        rows.append({
            "name": meta_path.parent.parent.name,
            "revision": meta_path.parent.name,
            "n_params": int(meta["n_params"]),
            "n_params_nonembedding": int(meta["n_params_nonembedding"]),
            "tokens_trained": int(meta["tokens_trained"]),
            "step": int(match.group(1)),
        })
    rows.sort(key=lambda r: (r["n_params"], r["name"], r["step"]))
    return rows
