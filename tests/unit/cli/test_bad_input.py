"""Bad input through the real CLI, in a subprocess: one line naming the culprit, exit 2, no
traceback, nothing written, earlier results untouched. No Ray starts for any of these."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import REPO_ROOT


def _sweep(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def _copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _task_folder(root: Path, name: str, yaml_body: str, data: str | None) -> Path:
    folder = root / f"tasks_{name}"
    folder.mkdir()
    if data is not None:
        (folder / "data.jsonl").write_text(data)
    (folder / f"{name}.yaml").write_text(yaml_body.replace("DATA", str(folder / "data.jsonl")))
    return folder


_GEN_YAML = """task: NAME
dataset_path: json
dataset_kwargs:
  data_files:
    test: DATA
test_split: test
output_type: generate_until
doc_to_text: "{{q}}"
doc_to_target: "{{a}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 4
metric_list:
  - metric: exact_match
"""


def _cases(world: dict, tmp: Path) -> list[tuple[str, list[str], str]]:
    """(id, argv after `harness`, text the one-line message must contain)."""
    small, tasks = str(world["small"]), str(world["tasks"])
    base = ["--tasks", "tiny_mc", "--include-path", tasks]
    pickle_only = tmp / "pickle-only"
    pickle_only.mkdir()
    for f in Path(small).iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, pickle_only / f.name)
    (pickle_only / "pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")
    no_pad = _copy_model(world["small"], tmp / "no-pad")
    config = json.loads((no_pad / "tokenizer_config.json").read_text())
    config.pop("eos_token", None), config.pop("pad_token", None)
    (no_pad / "tokenizer_config.json").write_text(json.dumps(config))
    ladder = tmp / "ladder"
    _copy_model(world["small"], ladder / "step10")
    empty = _task_folder(tmp, "empty_t", _GEN_YAML.replace("NAME", "empty_t"), "")
    nofield = _task_folder(tmp, "nofield_t", _GEN_YAML.replace("NAME", "nofield_t"), '{"x": 1}\n{"x": 2}\n')
    broken = _task_folder(tmp, "broken_t", "task: broken_t\n  output_type: [unclosed\n", "")
    out_file = tmp / "a-file"
    out_file.write_text("x")
    m = ["--models", small]
    return [
        ("malformed-yaml", [str(_sweep(tmp / "bad.yaml", "models:\n  - path: x\n tasks: [a\n"))], "line"),
        ("unknown-key", [str(_sweep(tmp / "k.yaml", f"modles: [{small}]\ntasks: [tiny_mc]\n"))], "did you mean 'models'"),
        ("unknown-model-key", [str(_sweep(tmp / "mk.yaml", f"models:\n  - path: {small}\n    revison: x\ntasks: [tiny_mc]\n"))], "revision"),
        ("wrong-type", [str(_sweep(tmp / "t.yaml", f"models: [{small}]\ntasks: [tiny_mc]\nlimit: ten\n"))], "limit: expected int"),
        ("unknown-task", m + ["--tasks", "tiny_mcc", "--include-path", tasks], "did you mean tiny_mc"),
        ("broken-task-yaml", m + ["--tasks", "broken_t", "--include-path", str(broken)], "broken_t"),
        ("model-missing", ["--models", str(tmp / "nope")] + base, "does not exist"),
        ("hub-offline", ["--models", "harness-test-org/no-such-model-xyz"] + base, "harness-test-org/no-such-model-xyz"),
        ("revision-missing", ["--models", f"{ladder}@step99"] + base, "available: step10"),
        ("tokenizer-no-pad-eos", ["--models", str(no_pad)] + base, "neither a pad nor an eos"),
        ("duplicate-names", [str(_sweep(tmp / "d.yaml", f"models: [{small}, {small}]\ntasks: [tiny_mc]\n"))], "duplicate model name"),
        ("negative-shots", m + base + ["--num-fewshot", "-1"], "num_fewshot must be 0 or more"),
        ("too-many-shots", m + base + ["--num-fewshot", "50"], "few-shot split holds only"),
        ("empty-dataset", m + ["--tasks", "empty_t", "--include-path", str(empty)], "empty_t"),
        ("rows-lack-fields", m + ["--tasks", "nofield_t", "--include-path", str(nofield)], "nofield_t"),
        ("out-is-file", m + base + ["--out", str(out_file)], "is a file"),
        ("out-under-file", m + base + ["--out", str(out_file / "sub")], "lies under the file"),
        ("limit-zero", m + base + ["--limit", "0"], "limit must be at least 1"),
        ("pickle-only", ["--models", str(pickle_only)] + base, "allow_pickle: true"),
        ("bad-device-flag", m + base + ["--device", "tpu"], "invalid choice"),
    ]


def _harness(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="0", HF_HUB_ETAG_TIMEOUT="3", HF_HUB_DOWNLOAD_TIMEOUT="3")
    return subprocess.run([sys.executable, "-m", "harness", "run", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_bad_inputs_answer_one_line_and_exit_2(tiny_world, tmp_path):
    cases = _cases(tiny_world, tmp_path)
    assert len(cases) >= 15
    failures = []
    for case_id, argv, needle in cases:
        out = tmp_path / f"out-{case_id}"
        if "--out" not in argv:
            argv = [*argv, "--out", str(out)]
        proc = _harness(*argv, cwd=tmp_path)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        problems = []
        if proc.returncode != 2:
            problems.append(f"exit {proc.returncode}")
        if "Traceback" in proc.stderr:
            problems.append("traceback")
        error_lines = [line for line in lines if line.startswith("harness: error:")]
        if len(error_lines) != 1 or needle not in error_lines[0]:
            problems.append(f"message {error_lines or lines[-3:]!r} lacks {needle!r}")
        if out.exists():
            problems.append("wrote the output folder")
        if problems:
            failures.append(f"{case_id}: {'; '.join(problems)}")
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_a_run_into_an_import_folder_is_refused(tiny_world, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    manifest = {"kind": "import", "sweep": {"source": "harness import"}, "sources": []}
    (out / "manifest.json").write_text(json.dumps(manifest))
    before = (out / "manifest.json").read_text()
    proc = _harness("--models", str(tiny_world["small"]), "--tasks", "tiny_mc", "--include-path",
                    str(tiny_world["tasks"]), "--out", str(out), cwd=REPO_ROOT)
    assert proc.returncode == 2 and "holds results of `harness import`" in proc.stderr
    assert (out / "manifest.json").read_text() == before
