"""lm-eval result files: the 0.3 layout (a committed Pythia file) and the 0.4 layout (written here)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.config import REPO_ROOT
from harness.errors import UserError
from harness.ingest.detect import read_source
from harness.ingest.lmeval_json import lmeval_version, model_args
from tests.unit.ingest import lmeval04

PYTHIA = REPO_ROOT / "examples" / "pythia-evals"


def _rows(parsed) -> dict:
    return {(r.task, r.metric, r.filter): r for r in parsed.scores}


def test_a_pythia_03_file_gives_every_task_metric_with_its_stderr():
    parsed = read_source(PYTHIA / "pythia-70m" / "zero-shot" / "70m_step143000.json")
    assert parsed.format == "lm-eval-0.3"
    rows = _rows(parsed)
    assert {r.model_key for r in parsed.scores} == {("EleutherAI/pythia-v1.1-70m", "step143000")}
    assert {t for t, _, _ in rows} == {"lambada_openai", "piqa", "arc_easy", "arc_challenge", "winogrande", "sciq",
                                       "logiqa", "wsc"}
    piqa = rows[("piqa", "acc", "none")]  # the published 70M PIQA accuracy (Biderman et al. 2023)
    assert round(piqa.value, 4) == 0.5947 and 0 < piqa.stderr < 0.02 and piqa.n is None
    assert ("lambada_openai", "ppl", "none") in rows and not any(m.endswith("_stderr") for _, m, _ in rows)
    assert {r.filter for r in parsed.scores} == {"none"}


def test_a_03_file_with_use_accelerate_first_keeps_model_and_revision():
    parsed = read_source(PYTHIA / "pythia-160m" / "zero-shot" / "160m_step0.json")
    raw = json.loads((PYTHIA / "pythia-160m" / "zero-shot" / "160m_step0.json").read_text())
    assert raw["config"]["model_args"].startswith("use_accelerate=True,")
    assert {r.model_key for r in parsed.scores} == {("EleutherAI/pythia-v1.1-160m", "step0")}


def test_a_04_file_gives_metric_filter_rows_and_skips_groups_and_aliases(tmp_path):
    parsed = read_source(lmeval04.write_run(tmp_path))
    assert parsed.format == "lm-eval-0.4"
    rows = _rows(parsed)
    assert set(rows) == {("arith_mc", "acc", "none"), ("arith_mc", "acc_norm", "none"),
                         ("arith_gen", "exact_match", "strict-match"), ("arith_gen", "exact_match", "flexible")}
    assert not any(task == "arith" for task, _, _ in rows)  # the group: its subtasks are the rows
    assert any("group" in note for note in parsed.notes)
    mc = rows[("arith_mc", "acc", "none")]
    assert (mc.model, mc.revision, mc.value, mc.stderr, mc.n) == (lmeval04.MODEL, "step3000", 2 / 3, 0.33, 3)
    assert rows[("arith_mc", "acc_norm", "none")].stderr is None  # "N/A"
    assert mc.stated.n_params == 162322944


def test_04_model_args_may_be_a_dict_and_revision_defaults_to_main(tmp_path):
    data = lmeval04.results()
    data["config"]["model_args"] = {"pretrained": "my-org/model", "dtype": "float32"}
    path = tmp_path / "results_x.json"
    path.write_text(json.dumps(data))
    assert {r.model_key for r in read_source(path).scores} == {("my-org/model", "main")}


def test_versions_are_told_apart_by_content():
    assert lmeval_version({"results": {"t": {"acc,none": 1.0}}}) == "0.4"
    assert lmeval_version({"results": {"t": {"acc": 1.0}}, "versions": {"t": 0}}) == "0.3"
    assert lmeval_version({"results": {}}) is None and lmeval_version({"results": [1]}) is None
    assert lmeval_version([1, 2]) is None
    assert model_args({"model_args": "pretrained=a/b,revision=step1"}) == {"pretrained": "a/b", "revision": "step1"}


def test_a_result_without_a_model_name_is_refused(tmp_path):
    data = lmeval04.results()
    data["config"]["model_args"] = "dtype=float32"
    del data["model_name"]
    path = tmp_path / "results_y.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="cannot tell which model"):
        read_source(path)


def test_nan_values_are_kept_as_values_not_dropped(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"results": {"t": {"acc": float("nan"), "acc_stderr": 0.1}}, "versions": {"t": 0},
                                "config": {"model_args": "pretrained=gpt2"}}))
    (row,) = read_source(Path(path)).scores
    assert math.isnan(row.value) and row.stderr == 0.1
