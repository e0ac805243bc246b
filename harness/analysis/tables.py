"""The two tables `harness analyze` writes: fits.parquet and bands.parquet.

fits.parquet has one row per fitted parameter (power_law, sigmoid, chinchilla), per emergence
score (law "emergence") and per quantity derived from an L(N, D) fit (laws "chinchilla_residuals",
"chinchilla_frontier" for a reliable fit and "isoflop" for separate runs: analysis.frontier), with its interval
and, for fits, goodness of fit (back-tests have their
own table, backtest.parquet, from analysis/predict/). bands.parquet holds each fitted curve on a grid of sizes with its
pointwise bootstrap band; the plots draw it. Both are replaced atomically.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from harness.analysis.laws import FitOutcome
from harness.results.store import write_atomic

FIT_COLUMNS = ("task", "metric", "filter", "law", "param", "estimate", "ci_low", "ci_high", "ci_level", "ci_method",
               "n_boot_ok", "n_sizes", "transform", "note", "n_points", "dof", "rss", "rmse", "r2", "reliable")
BAND_COLUMNS = ("n", "estimate", "low", "high", "task", "metric", "law")


def fits_table(outcomes: list[FitOutcome], emergence_rows: list[dict], level: float) -> pd.DataFrame:
    rows = [r for o in outcomes for r in o.rows(level)]
    rows += [{"reliable": True, **r} for r in emergence_rows]
    return pd.DataFrame(rows, columns=list(FIT_COLUMNS))


def bands_table(outcomes: list[FitOutcome]) -> pd.DataFrame:
    bands = [o.band.assign(task=o.series.task, metric=o.series.metric, law=o.law) for o in outcomes
             if o.band is not None]
    return pd.concat(bands, ignore_index=True) if bands else pd.DataFrame(columns=list(BAND_COLUMNS))


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write `frame` to Parquet so that readers see the previous file or the whole new one."""
    write_atomic(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path
