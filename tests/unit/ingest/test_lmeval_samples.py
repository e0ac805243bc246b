"""lm-eval --log_samples files: one row per document, filters merged, twins as a harness run defines them."""

from __future__ import annotations

import json
import math

import pytest

from harness.errors import UserError
from harness.ingest.detect import read_source
from harness.ingest.twins import TaskConfig, document_twins
from harness.results.metrics import brier_score, levenshtein
from tests.unit.ingest import lmeval04


def _samples(tmp_path, task):
    lmeval04.write_run(tmp_path)
    return read_source(tmp_path / f"samples_{task}_{lmeval04.STAMP}.jsonl")


def test_multiple_choice_rows_carry_metrics_gold_loglik_and_brier(tmp_path):
    parsed = _samples(tmp_path, "arith_mc")
    assert parsed.format == "lm-eval-samples"
    (samples,) = parsed.samples
    assert samples.key == (lmeval04.MODEL, lmeval04.REVISION, "arith_mc")  # from the sibling results file
    rows = list(samples.rows)
    assert [r["doc_id"] for r in rows] == [0, 1, 2]
    for row, (gold, logliks) in zip(rows, lmeval04.MC_DOCS):
        assert row["target_loglik"] == logliks[gold] and row["n_choices"] == len(logliks)
        assert row["brier"] == brier_score(logliks, gold)
        assert row["acc"] in (0.0, 1.0) and "acc_norm" in row
    twins = {r.metric: r for r in parsed.scores}
    assert set(twins) == {"target_loglik", "brier"}
    assert math.isclose(twins["target_loglik"].value, sum(lg[g] for g, lg in lmeval04.MC_DOCS) / 3)
    assert twins["brier"].n == 3 and twins["brier"].stderr > 0


def test_generation_rows_merge_filters_and_carry_edit_distance(tmp_path):
    (samples,) = _samples(tmp_path, "arith_gen").samples
    rows = list(samples.rows)
    assert len(rows) == 3  # two lines (filters) per document -> one row
    assert {"exact_match,strict-match", "exact_match,flexible"} <= set(rows[0])
    assert [r["edit_distance"] for r in rows] == [float(levenshtein(g, t)) for t, g in lmeval04.GEN_DOCS]


def test_a_gold_given_as_choice_text_or_list_is_found():
    line = {"doc": {"answer": "12"}, "target": "12", "resps": [[["-3.0", "False"]], [["-1.0", "True"]]],
            "arguments": {"gen_args_0": {"arg_0": "Q", "arg_1": " 11"}, "gen_args_1": {"arg_0": "Q", "arg_1": " 12"}}}
    as_field = document_twins(line, TaskConfig("multiple_choice", "answer", " "))
    assert as_field["target_loglik"] == -1.0  # a document field holding the choice's text
    as_list = document_twins(dict(line, target="[1]", doc={}), TaskConfig("multiple_choice", "{{x}}", " "))
    assert as_list["target_loglik"] == -1.0
    # A rendered digit target is an index (as lm-eval reads it); out of range, no twin is made.
    out_of_range = document_twins(dict(line, target="13", doc={}), TaskConfig("multiple_choice", "{{x}}", " "))
    assert out_of_range == {"n_choices": len(line["resps"])}  # the choices still count, for chance
    assert document_twins(dict(line, target="0", doc={}), TaskConfig("multiple_choice", "{{x}}", " "))["brier"] > 0


def test_rolling_rows_carry_document_loglik_words_and_bytes():
    line = {"resps": [["-120.5"]], "word_perplexity": [-120.5, 30], "byte_perplexity": [-120.5, 160],
            "bits_per_byte": [-120.5, 160]}
    assert document_twins(line, TaskConfig("loglikelihood_rolling")) == {"target_loglik": -120.5, "n_words": 30,
                                                                        "n_bytes": 160}


def test_a_samples_file_needs_its_results_file_beside_it(tmp_path):
    lmeval04.write_run(tmp_path)
    (tmp_path / f"results_{lmeval04.STAMP}.json").unlink()
    with pytest.raises(UserError, match="results file"):
        read_source(tmp_path / f"samples_arith_mc_{lmeval04.STAMP}.jsonl")


def test_a_renamed_samples_file_is_refused(tmp_path):
    lmeval04.write_run(tmp_path)
    renamed = tmp_path / "mc.jsonl"
    (tmp_path / f"samples_arith_mc_{lmeval04.STAMP}.jsonl").rename(renamed)
    with pytest.raises(UserError, match="samples_<task>_<timestamp>"):
        read_source(renamed)


def test_jsonl_that_is_not_samples_is_not_a_result(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"a": 1}) + "\n" + json.dumps({"b": 2}) + "\n")
    with pytest.raises(UserError, match="not a result"):
        read_source(path)
