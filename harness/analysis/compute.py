"""Training compute arithmetic: C = 6 N D, the 20-tokens-per-parameter rule, the Chinchilla frontier.

C ≈ 6 N D counts a forward (2 N FLOPs per token) and a backward pass (4 N) over D tokens
(Kaplan et al. 2020). The frontier N_opt(C), D_opt(C) comes from an L(N, D) fit: Hoffmann et al.'s
published one by default, or a run's own `fits.parquet` (law "chinchilla"), unless `harness analyze`
marked that fit unreliable (harness.analysis.fit.reliability): then there is no frontier to give.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError
from harness.analysis.fit import CHINCHILLA_PAPER, chinchilla_frontier
from harness.analysis.fit.chinchilla import chinchilla_loss
from harness.analysis.fit.reliability import UNRELIABLE

TOKENS_PER_PARAM = 20.0  # Hoffmann et al. 2022's rule of thumb
_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def training_flops(n_params: float, tokens: float) -> float:
    return 6.0 * n_params * tokens


def tokens_by_rule(n_params: float, tokens_per_param: float = TOKENS_PER_PARAM) -> float:
    return tokens_per_param * n_params


@dataclass(frozen=True)
class ComputeSummary:
    n_params: float
    tokens: float
    tokens_source: str  # "given", "from --flops", "20 tokens/param rule"
    flops: float
    rule_tokens: float
    rule_flops: float
    fit_source: str
    fit_params: dict[str, float]
    n_opt: float  # compute-optimal size for this C
    d_opt: float
    loss: float  # L(N, D) predicted by the fit
    loss_opt: float


def summarize(n_params: float, tokens: float | None = None, flops: float | None = None,
              fit_params: dict[str, float] | None = None, fit_source: str = "") -> ComputeSummary:
    """Everything `harness compute` prints, as data. Give at most one of tokens and flops."""
    if n_params <= 0:
        raise UserError(f"--params must be > 0, got {n_params:g}")
    if tokens is not None and flops is not None:
        raise UserError("give --tokens or --flops, not both")
    if tokens is not None:
        d, source = float(tokens), "given"
    elif flops is not None:
        d, source = float(flops) / (6.0 * n_params), "from --flops (D = C / 6N)"
    else:
        d, source = tokens_by_rule(n_params), f"{TOKENS_PER_PARAM:g} tokens/param rule"
    if d <= 0:
        raise UserError(f"training tokens must be > 0, got {d:g}")
    p = fit_params or CHINCHILLA_PAPER
    c = training_flops(n_params, d)
    n_opt, d_opt = (float(v) for v in chinchilla_frontier(p, c))
    rule_d = tokens_by_rule(n_params)
    return ComputeSummary(
        n_params=float(n_params), tokens=d, tokens_source=source, flops=c,
        rule_tokens=rule_d, rule_flops=training_flops(n_params, rule_d),
        fit_source=fit_source or "Chinchilla published fit (Hoffmann et al. 2022)", fit_params=dict(p),
        n_opt=n_opt, d_opt=d_opt, loss=_loss(p, n_params, d), loss_opt=_loss(p, n_opt, d_opt),
    )


def _loss(p: dict[str, float], n: float, d: float) -> float:
    return float(chinchilla_loss(p, n, d))


def run_fit_params(run_dir: Path, task: str | None = None,
                   allow_unreliable: bool = False) -> tuple[dict[str, float], str]:
    """The Chinchilla fit stored in RUN_DIR/fits.parquet (law "chinchilla"); (params, description).

    Raises:
        UserError: no such file or fit, or the fit is marked unreliable (and allow_unreliable is False):
            its frontier would be an artefact, e.g. of token counts read off one run's checkpoints.
    """
    import pandas as pd

    path = Path(run_dir) / "fits.parquet"
    if not path.is_file():
        raise UserError(f"{path} not found: run `harness analyze {run_dir}` first")
    fits = pd.read_parquet(path)
    fits = fits[fits["law"] == "chinchilla"]
    if task is not None:
        fits = fits[fits["task"] == task]
    if fits.empty:
        which = f" for task {task!r}" if task else ""
        raise UserError(f"{path} holds no Chinchilla L(N, D) fit{which} (needs >= 2 revisions for >= 3 sizes)")
    key = sorted(set(zip(fits["task"], fits["metric"])))[0]
    rows = fits[(fits["task"] == key[0]) & (fits["metric"] == key[1])]
    why = unreliable_reason(rows)
    if why is not None and not allow_unreliable:
        raise UserError(f"{path}: the L(N, D) fit of {key[0]}/{key[1]} is unreliable, so it gives no "
                        f"compute-optimal frontier ({why})")
    params = {r.param: float(r.estimate) for r in rows.itertuples()}
    source = f"run fit {path} (task {key[0]}, metric {key[1]})"
    return params, source + (" — UNRELIABLE: " + why if why is not None else "")


def unreliable_reason(rows) -> str | None:
    """Why the fits.parquet rows of one fit are marked unreliable, None when they are not: the
    `reliable` column where the table has one, else the note's UNRELIABLE prefix (both are written
    by harness.analysis.laws; older tables have neither, and count as reliable)."""
    if "reliable" in rows.columns and rows["reliable"].notna().any():
        bad = not bool(rows["reliable"].dropna().all())
    else:
        bad = "note" in rows.columns and rows["note"].fillna("").astype(str).str.startswith(UNRELIABLE).any()
    if not bad:
        return None
    notes = rows["note"].dropna().astype(str) if "note" in rows.columns else []
    return notes.iloc[0] if len(notes) else "marked unreliable"


def parse_count(text: str, flag: str) -> float:
    """'7e9', '7B', '300b', '3.1e23' -> float; the error names the flag."""
    m = re.fullmatch(r"\s*([0-9.]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT]?)\s*", str(text))
    if not m:
        raise UserError(f"{flag} {text!r} is not a number; use e.g. 7e9 or 7B")
    value = float(m.group(1)) * _SUFFIX.get(m.group(2).lower(), 1.0)
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"{flag} must be a positive number, got {text!r}")
    return value


def format_summary(s: ComputeSummary) -> str:
    p = s.fit_params
    lines = [
        f"parameters N          {s.n_params:.4g}",
        f"training tokens D     {s.tokens:.4g}  ({s.tokens_source})",
        f"tokens per parameter  {s.tokens / s.n_params:.3g}",
        f"training compute C    {s.flops:.3g} FLOPs  (C = 6 N D)",
        f"20 tokens/param rule  D = {s.rule_tokens:.4g} tokens, C = {s.rule_flops:.3g} FLOPs",
        f"frontier at this C    N_opt = {s.n_opt:.4g}, D_opt = {s.d_opt:.4g}, "
        f"D_opt/N_opt = {s.d_opt / s.n_opt:.3g}",
        f"predicted loss        L(N, D) = {s.loss:.4f} nats/token; at the optimum {s.loss_opt:.4f}",
        f"fit                   {s.fit_source}: E={p['E']:.4g} A={p['A']:.4g} B={p['B']:.4g} "
        f"alpha={p['alpha']:.4g} beta={p['beta']:.4g}",
    ]
    return "\n".join(lines)
