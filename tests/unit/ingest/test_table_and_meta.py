"""Plain CSV and Parquet tables, and --meta files."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.errors import UserError
from harness.ingest.detect import read_source
from harness.ingest.meta import load_meta

CSV = """model,revision,n_params,tokens_trained,task,metric,value,stderr,n
org/a,step10,1000,,t1,acc,0.5,0.1,100
org/a,,1000,2e6,t1,acc,0.6,,
"""


def test_a_csv_table_is_read_with_defaults_for_empty_cells(tmp_path):
    path = tmp_path / "scores.txt"  # told by content, not by name
    path.write_text(CSV)
    parsed = read_source(path)
    assert parsed.format == "csv"
    first, second = parsed.scores
    assert (first.revision, first.filter, first.stderr, first.n, first.stated.tokens_trained) == ("step10", "none", 0.1, 100, None)
    assert (second.revision, second.stderr, second.n, second.stated.tokens_trained) == ("main", None, None, 2_000_000)
    assert first.stated.n_params == 1000 and first.stated.n_params_nonembedding is None


def test_a_parquet_table_with_the_optional_columns(tmp_path):
    frame = pd.DataFrame({"model": ["m"], "revision": ["main"], "n_params": [10.0], "tokens_trained": [20],
                          "task": ["t"], "metric": ["exact_match"], "value": [0.25], "filter": ["strict"],
                          "n_params_nonembedding": [7], "n": [4], "extra": ["ignored"]})
    path = tmp_path / "table.bin"
    frame.to_parquet(path)
    (row,) = read_source(path).scores
    assert (row.filter, row.n, row.stated.n_params, row.stated.n_params_nonembedding) == ("strict", 4, 10, 7)


def test_a_table_carries_finished_schedule_when_it_has_the_column(tmp_path):
    """A harness run's scores.parquet says which revisions finished their schedule; an import keeps it."""
    frame = pd.DataFrame({"model": ["m"] * 3, "revision": ["step1", "step2", "step3"], "n_params": [10] * 3,
                          "tokens_trained": [1, 2, 3], "task": ["t"] * 3, "metric": ["acc"] * 3,
                          "value": [0.1, 0.2, 0.3], "finished_schedule": pd.array([True, False, None], dtype="boolean")})
    frame.to_parquet(tmp_path / "scores.parquet")
    assert [r.finished_schedule for r in read_source(tmp_path / "scores.parquet").scores] == [True, False, None]
    (tmp_path / "t.csv").write_text(CSV.replace(",n\n", ",n,finished_schedule\n").replace(",100\n", ",100,true\n")
                                    .replace(",,\n", ",,\n"))
    assert [r.finished_schedule for r in read_source(tmp_path / "t.csv").scores] == [True, None]


def test_a_table_without_the_required_columns_is_not_a_result(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"model": ["m"], "task": ["t"], "metric": ["acc"], "value": [1.0]}).to_parquet(path)
    with pytest.raises(UserError, match="missing column"):
        read_source(path)
    text = tmp_path / "notes.csv"
    text.write_text("name,score\nx,1\n")
    with pytest.raises(UserError, match="not a result"):
        read_source(text)


def test_meta_gives_sizes_by_name_or_last_component_and_tokens_by_step(tmp_path):
    path = tmp_path / "meta.yaml"
    path.write_text("models:\n  /abs/path/tiny-s:\n    n_params: 2.5e4\n  tiny-l:\n    n_params: 100\n"
                    "    n_params_nonembedding: 80\n    tokens_per_step: 1_000\n"
                    "  other:\n    n_params: 5\n    tokens_trained: {step1: 10, main: 30}\n")
    meta = load_meta(path)
    assert meta.sizes("/abs/path/tiny-s", "main").n_params == 25_000
    tiny_l = meta.sizes("/elsewhere/tiny-l", "step7")
    assert (tiny_l.n_params, tiny_l.n_params_nonembedding, tiny_l.tokens_trained) == (100, 80, 7000)
    assert meta.sizes("other", "main").tokens_trained == 30 and meta.sizes("other", "step2").tokens_trained is None
    assert meta.sizes("unknown", "main").n_params is None


@pytest.mark.parametrize("body, message", [
    ("models: [a, b]\n", "models:"),
    ("models:\n  a:\n    params: 5\n", "unknown key"),
    ("models:\n  a:\n    n_params: -1\n", "positive"),
    ("models:\n  a: [\n", "not valid YAML"),
])
def test_a_bad_meta_file_is_one_line(tmp_path, body, message):
    path = tmp_path / "meta.yaml"
    path.write_text(body)
    with pytest.raises(UserError, match=message) as info:
        load_meta(path)
    assert "\n" not in str(info.value)
