"""`harness import` through the CLI, in process: what it writes, re-imports, additions, every refusal.

Every refusal is exit 2 with one line naming the file and the fix, and leaves the folder as it was.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from harness.analysis.analyze import load_samples, load_scores
from harness.cli import main
from harness.config import REPO_ROOT, sweep_from_mapping
from harness.errors import UserError
from harness.results.manifest import check_output_dir
from harness.results.schemas import SCORES_SCHEMA
from tests.unit.ingest import lmeval04

PYTHIA = REPO_ROOT / "examples" / "pythia-evals"


def _import(*argv) -> int:
    return main(["import", *map(str, argv), "--no-analyze"])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
        if folder.exists() else {}


def _refused(capsys, folder: Path, *argv, match: str) -> str:
    before = _snapshot(folder)
    capsys.readouterr()
    assert _import(*argv, "--out", folder) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness: error: ") and "\n" not in err and match in err, err
    assert _snapshot(folder) == before  # nothing written, nothing changed
    return err


def test_the_whole_pythia_suite_imports_as_7_sizes_by_27_checkpoints(tmp_path, capsys):
    out = tmp_path / "pythia"
    started = time.perf_counter()
    assert _import(PYTHIA, "--out", out) == 0
    seconds = time.perf_counter() - started
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 189 + 1 and lines[-1].startswith("harness: imported 189 files")
    assert pq.read_schema(out / "scores.parquet").equals(SCORES_SCHEMA)
    scores = load_scores(out)
    assert scores["model"].nunique() == 7 and scores.groupby("model")["revision"].nunique().eq(27).all()
    assert len(scores) == 7 * 27 * 14 and load_samples(out) is None  # 8 tasks; acc, acc_norm, ppl as published
    final = scores[(scores.revision == "step143000") & (scores.task == "sciq") & (scores.metric == "acc")]
    assert final.set_index("model")["value"].round(3)["EleutherAI/pythia-v1.1-12b"] == 0.902
    assert set(final["tokens_trained"]) == {299_892_736_000}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "import" and len(manifest["sources"]) == 189
    assert {s["format"] for s in manifest["sources"]} == {"lm-eval-0.3"} and len(manifest["sources"][0]["sha256"]) == 64
    assert seconds < 10


def test_an_imported_folder_is_analysed(tmp_path, capsys):
    from harness.analysis.analyze import analyze_run

    out = tmp_path / "final"
    assert _import(*sorted(PYTHIA.glob("*/zero-shot/*_step143000.json")), "--out", out) == 0
    summary = analyze_run(out, n_boot=0)
    assert summary.n_fits > 0 and (out / "report.md").is_file()


def test_reimport_changes_nothing_and_more_sources_add(tmp_path, capsys):
    out = tmp_path / "run"
    small = sorted(PYTHIA.glob("pythia-70m/zero-shot/*.json"))
    assert _import(*small[:3], "--out", out) == 0
    first = (out / "scores.parquet").read_bytes()
    assert _import(*small[:3], "--out", out) == 0
    assert (out / "scores.parquet").read_bytes() == first  # byte-identical
    assert _import(small[1], *small[3:5], "--out", out) == 0  # overlapping and new sources
    scores = pd.read_parquet(out / "scores.parquet")
    assert scores["revision"].nunique() == 5 and len(scores) == 5 * 14
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["sources"]) == 5  # each source once, with the bytes it had


def test_a_folder_from_an_older_harness_without_finished_schedule_still_merges(tmp_path, capsys):
    out = tmp_path / "run"
    small = sorted(PYTHIA.glob("pythia-70m/zero-shot/*.json"))
    assert _import(*small[:2], "--out", out) == 0
    assert pq.read_table(out / "scores.parquet").column("finished_schedule").null_count == 14 * 2  # imports: unknown
    older = pq.read_table(out / "scores.parquet").drop_columns(["finished_schedule"])
    pq.write_table(older, out / "scores.parquet")  # as an import before the column existed wrote it
    assert _import(*small[:3], "--out", out) == 0  # the same rows again (no conflict) and one new source
    scores = pq.read_table(out / "scores.parquet")
    assert scores.schema.equals(SCORES_SCHEMA) and scores.num_rows == 14 * 3
    assert scores.column("finished_schedule").null_count == scores.num_rows


def test_04_results_and_samples_import_with_documents(tmp_path, capsys):
    lmeval04.write_run(tmp_path / "lm")
    out = tmp_path / "run"
    assert _import(tmp_path / "lm", "--out", out) == 0
    scores = load_scores(out)
    assert set(scores["task"]) == {"arith_mc", "arith_gen"}
    assert {"brier", "target_loglik", "edit_distance"} <= set(scores["metric"])
    assert scores["n_params_nonembedding"].eq(85_056_000).all()  # pythia-160m from the family table
    assert scores["tokens_trained"].eq(3000 * 2_097_152).all()
    samples = load_samples(out)
    assert len(samples) == 6 and set(samples["task"]) == {"arith_mc", "arith_gen"}
    before = _snapshot(out)
    assert _import(tmp_path / "lm", "--out", out) == 0
    after = _snapshot(out)
    assert {k: v for k, v in after.items() if k != "manifest.json"} == \
        {k: v for k, v in before.items() if k != "manifest.json"}


def test_meta_sizes_a_model_no_family_knows(tmp_path, capsys):
    lm = tmp_path / "lm"
    lmeval04.write_run(lm, model_args="pretrained=/models/ckpt-a,revision=step20")
    meta = tmp_path / "meta.yaml"
    meta.write_text("models:\n  ckpt-a:\n    n_params_nonembedding: 1000\n    tokens_per_step: 50\n")
    out = tmp_path / "run"
    assert _import(lm, "--out", out, "--meta", meta) == 0
    scores = load_scores(out)
    assert set(scores["model"]) == {"/models/ckpt-a"}
    assert scores["n_params_nonembedding"].eq(1000).all() and scores["tokens_trained"].eq(1000).all()
    assert pd.read_parquet(out / "scores.parquet")["n_params"].eq(162322944).all()  # the file's own figure


def test_a_missing_nonembedding_count_is_a_note_and_a_later_meta_fills_it_in(tmp_path, capsys):
    lm = tmp_path / "lm"
    lmeval04.write_run(lm, model_args="pretrained=/models/ckpt-b")
    out = tmp_path / "run"
    assert _import(lm, "--out", out) == 0
    assert "n_params_nonembedding unknown" in capsys.readouterr().out
    meta = tmp_path / "meta.yaml"
    meta.write_text("models:\n  ckpt-b:\n    n_params_nonembedding: 900\n")
    assert _import(lm, "--out", out, "--meta", meta) == 0
    assert load_scores(out)["n_params_nonembedding"].eq(900).all()
    meta.write_text("models:\n  ckpt-b:\n    n_params_nonembedding: 901\n")
    _refused(capsys, out, lm, "--meta", meta, match="make --meta agree")


def test_errors_are_one_line_exit_2_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "new"
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"results": {"t": {"acc": 0.5}}, "versions": {"t": 0},
                                   "config": {"model_args": "pretrained=org/mystery-3b"}}))
    err = _refused(capsys, out, unknown, match="size of org/mystery-3b@main is not known")
    assert str(unknown) in err and "--meta" in err
    assert not out.exists()  # refused after the folder was made and locked: removed again
    readme = tmp_path / "README.json"
    readme.write_text('{"title": "not a result"}')
    _refused(capsys, out, PYTHIA / "pythia-70m" / "zero-shot" / "70m_step0.json", readme, match="not a result")
    _refused(capsys, out, tmp_path / "absent.json", match="no such file")
    conflicting = tmp_path / "copy.json"
    data = json.loads((PYTHIA / "pythia-70m" / "zero-shot" / "70m_step0.json").read_text())
    data["results"]["piqa"]["acc"] += 0.01
    conflicting.write_text(json.dumps(data))
    err = _refused(capsys, out, PYTHIA / "pythia-70m" / "zero-shot" / "70m_step0.json", conflicting,
                   match="conflicts with")
    assert "piqa acc,none" in err
    bad_meta = tmp_path / "meta.yaml"
    bad_meta.write_text("models: 3\n")
    _refused(capsys, out, PYTHIA / "pythia-70m", "--meta", bad_meta, match="--meta")
    assert not out.exists()


def test_equal_duplicates_are_one_row_and_a_conflict_with_the_folder_is_refused(tmp_path, capsys):
    source = PYTHIA / "pythia-70m" / "zero-shot" / "70m_step0.json"
    twin = tmp_path / "same.json"
    shutil.copy(source, twin)
    out = tmp_path / "run"
    assert _import(source, twin, "--out", out) == 0
    assert len(pd.read_parquet(out / "scores.parquet")) == 14
    changed = tmp_path / "changed.json"
    data = json.loads(source.read_text())
    data["results"]["wsc"]["acc_stderr"] = 0.5
    changed.write_text(json.dumps(data))
    err = _refused(capsys, out, changed, match="conflicts with")
    assert "scores.parquet" in err and "wsc acc,none" in err


def test_folders_of_harness_run_are_not_mixed_with_imports_either_way(tmp_path, capsys):
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    (run_folder / "manifest.json").write_text(json.dumps({"sweep": {"source": "s.yaml"}, "identity": {}, "shards": []}))
    _refused(capsys, run_folder, PYTHIA / "pythia-70m", match="harness run")
    orphan = tmp_path / "orphan"
    orphan.mkdir()
    (orphan / "scores.parquet").write_bytes(b"x")
    _refused(capsys, orphan, PYTHIA / "pythia-70m", match="without an import manifest")
    imported = tmp_path / "imported"
    assert _import(PYTHIA / "pythia-70m" / "zero-shot" / "70m_step0.json", "--out", imported) == 0
    sweep = sweep_from_mapping({"models": ["EleutherAI/pythia-70m"], "tasks": ["piqa"], "output": str(imported)}, "t")
    with pytest.raises(UserError, match="holds results of `harness import`"):
        check_output_dir(sweep)


def test_an_analysis_failure_keeps_the_import_and_exits_3(tmp_path, capsys, monkeypatch):
    import harness.analysis.analyze as analyze

    def broken(run_dir, **kwargs):
        raise RuntimeError("a bug in the analysis\nwith a second line")

    monkeypatch.setattr(analyze, "analyze_run", broken)
    out = tmp_path / "run"
    assert main(["import", str(PYTHIA / "pythia-70m" / "zero-shot" / "70m_step0.json"), "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert "analysis failed (RuntimeError: a bug in the analysis)" in err and "harness analyze" in err
    assert len(pd.read_parquet(out / "scores.parquet")) == 14


def test_an_import_holds_the_folder_as_a_run_does(tmp_path, capsys):
    from harness.results.lock import run_lock

    source = PYTHIA / "pythia-70m" / "zero-shot" / "70m_step0.json"
    out = tmp_path / "held"
    out.mkdir()
    with run_lock(out):  # a live driver (this process) holds it
        err = _refused(capsys, out, source, match="is in use by pid")
    assert "--out" in err and not (out / "scores.parquet").exists()
    assert _import(source, "--out", out) == 0 and not (out / ".lock").exists()  # released after
