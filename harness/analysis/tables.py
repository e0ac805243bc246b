"""The two tables `harness analyze` writes: fits.parquet and bands.parquet.

fits.parquet has one row per fitted parameter (power_law, sigmoid, chinchilla), per back-test
quantity (law "<law>:backtest") and per emergence score (law "emergence"), with its interval and,
for fits, goodness of fit. bands.parquet holds each fitted curve on a grid of sizes with its
pointwise bootstrap band; the plots draw it. Both are replaced atomically.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from harness.analysis.backtest import Backtest
from harness.analysis.laws import FitOutcome
from harness.results.store import write_atomic

FIT_COLUMNS = ("task", "metric", "filter", "law", "param", "estimate", "ci_low", "ci_high", "ci_level", "ci_method",
               "n_boot_ok", "n_sizes", "transform", "note", "n_points", "dof", "rss", "rmse", "r2")
BAND_COLUMNS = ("n", "estimate", "low", "high", "task", "metric", "law")


def fits_table(outcomes: list[FitOutcome], backtests: list[Backtest], emergence_rows: list[dict],
               level: float) -> pd.DataFrame:
    rows = [r for o in outcomes for r in o.rows(level)]
    rows += [r for b in backtests for r in backtest_rows(b, level)]
    rows += emergence_rows
    return pd.DataFrame(rows, columns=list(FIT_COLUMNS))


def backtest_rows(b: Backtest, level: float) -> list[dict]:
    """One row per quantity of a back-test: predicted (with its prediction interval), measured, errors."""
    base = {"task": b.task, "metric": b.metric, "filter": "", "law": f"{b.law}:backtest", "ci_level": level,
            "ci_method": "paired document bootstrap (prediction interval)", "transform": "identity",
            "note": f"fit below {b.held_out_n:.3g}, predict {b.held_out_n:.3g}"}
    inside = np.nan if b.inside is None else float(b.inside)
    values = {"predicted": (b.predicted, b.pi_low, b.pi_high), "measured": (b.measured, np.nan, np.nan),
              "error": (b.error, np.nan, np.nan), "rel_error": (b.rel_error, np.nan, np.nan),
              "inside_interval": (inside, np.nan, np.nan)}
    return [{**base, "param": k, "estimate": v, "ci_low": lo, "ci_high": hi} for k, (v, lo, hi) in values.items()]


def bands_table(outcomes: list[FitOutcome]) -> pd.DataFrame:
    bands = [o.band.assign(task=o.series.task, metric=o.series.metric, law=o.law) for o in outcomes
             if o.band is not None]
    return pd.concat(bands, ignore_index=True) if bands else pd.DataFrame(columns=list(BAND_COLUMNS))


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write `frame` to Parquet so that readers see the previous file or the whole new one."""
    write_atomic(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path
