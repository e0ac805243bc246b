"""The README's "Results" recipes, run as written on real folders: a `harness run` of tasks of all
three output types, and an import whose tasks arrived in two imports.

The code is read out of README.md's code blocks (only the folder is changed), so the README and this
test cannot drift. The recipes read samples/ as one table: that is right only when every samples file
of a folder has the same columns (pandas and DuckDB both take the first file's schema and silently drop
the others' columns, here every discrete metric).
"""

from __future__ import annotations

import re
import shutil

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from harness.cli import main
from harness.config import REPO_ROOT
from tests.tiny import TASK_NAMES
from tests.unit.ingest import lmeval04

KEY = ["model", "revision", "task", "doc_id"]
README_FOLDER = "results/demo"


def _recipes() -> dict[str, list[str]]:
    """The code blocks of README.md's "Results" section, by language."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    blocks: dict[str, list[str]] = {}
    for language, code in re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S):
        blocks.setdefault(language, []).append(code)
    return blocks


def _pandas_samples(folder) -> pd.DataFrame:
    """Runs every Python recipe on `folder`; returns the `samples` frame they build."""
    namespace: dict = {}
    for code in _recipes()["python"]:
        exec(code.replace(README_FOLDER, str(folder)), namespace)  # noqa: S102 - the README's own code
    return namespace["samples"]


def _duckdb_samples(folder) -> pd.DataFrame:
    """Runs every SQL recipe on `folder`; returns every row of the samples glob the recipes query."""
    sql = "\n".join(_recipes()["sql"]).replace(README_FOLDER, str(folder))
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    with duckdb.connect() as con:
        for statement in filter(str.strip, body.split(";")):
            con.execute(statement).fetchall()
        globs = sorted(set(re.findall(r"'([^']*/samples/[^']*)'", body)))
        assert len(globs) == 1, globs
        return con.execute(f"SELECT * FROM '{globs[0]}'").df()


def _assert_every_document_whole(samples: pd.DataFrame, folder) -> None:
    """Every row of every samples file once, with every column that holds a value in its file."""
    files = sorted(f for f in (folder / "samples").rglob("*.parquet") if not f.name.startswith(".tmp-"))
    assert len({pq.read_schema(f).remove_metadata() for f in files}) == 1, "samples files differ in columns"
    assert not samples.duplicated(KEY).any()
    assert len(samples) == sum(pq.read_metadata(f).num_rows for f in files)
    for path in files:
        own = pq.read_table(path).to_pandas()
        rows = samples[samples.task == own.task.iloc[0]].sort_values("doc_id").reset_index(drop=True)
        for column in (c for c in own.columns if own[c].notna().any() and c not in KEY):
            assert column in samples.columns, f"{column} of {path.name} is missing"
            pd.testing.assert_series_equal(rows[column].astype(float), own[column].astype(float),
                                           check_names=False)


@pytest.fixture(scope="module")
def run_folder(tiny_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("readme") / "run"
    rc = main(["run", "--models", str(tiny_world["small"]), "--tasks", ",".join(TASK_NAMES), "--include-path",
               str(tiny_world["tasks"]), "--out", str(out), "--limit", "4", "--device", "cpu", "--workers", "1",
               "--no-analyze"])
    assert rc == 0
    # A writer killed between writing a samples file and renaming it leaves a whole copy: never read.
    done = next((out / "samples").rglob("*.parquet"))
    shutil.copy(done, done.with_name(f".tmp-killed{done.suffix}"))
    return out


@pytest.fixture(scope="module")
def import_folder(tmp_path_factory):
    """An import folder whose two tasks came in two imports: its files were written at different times."""
    root = tmp_path_factory.mktemp("readme-import")
    lmeval04.write_run(root / "lm")
    later = root / "later"
    later.mkdir()
    shutil.copy(next((root / "lm").glob("results_*.json")), later)
    shutil.move(next((root / "lm").glob("samples_arith_gen_*.jsonl")), later)
    out = root / "out"
    # The third import repeats the first: its samples equal the folder's, whose file now also holds
    # the later task's columns (as nulls); that is no conflict.
    for source in (root / "lm", later, root / "lm"):
        assert main(["import", str(source), "--out", str(out), "--no-analyze"]) == 0
    return out


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("reader", [_pandas_samples, _duckdb_samples], ids=["pandas", "duckdb"])
def test_recipes_read_every_metric_of_a_run(run_folder, reader):
    samples = reader(run_folder)
    assert {"acc", "acc_norm", "exact_match", "target_loglik", "brier", "edit_distance", "n_tokens"} \
        <= set(samples.columns)
    assert set(samples.task) == set(TASK_NAMES)
    _assert_every_document_whole(samples, run_folder)


@pytest.mark.parametrize("reader", [_pandas_samples, _duckdb_samples], ids=["pandas", "duckdb"])
def test_recipes_read_every_metric_of_an_import_made_in_two_steps(import_folder, reader):
    samples = reader(import_folder)
    assert {"acc", "acc_norm", "exact_match,strict-match", "exact_match,flexible"} <= set(samples.columns)
    _assert_every_document_whole(samples, import_folder)
