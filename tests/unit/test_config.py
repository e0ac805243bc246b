"""Sweep YAML: typed, frozen, unknown keys rejected with the key named, flags override the file."""

from __future__ import annotations

import dataclasses

import pytest

from harness.config import apply_overrides, load_sweep, parse_model_ref, sweep_from_mapping
from harness.errors import UserError


def _sweep(**extra):
    raw = {"models": [{"path": "a/b", "revisions": ["step1", "step2"], "tokens_trained": {"step1": 10}}],
           "tasks": ["t1", {"name": "t2", "num_fewshot": 3, "revisions": "final"}]}
    raw.update(extra)
    return sweep_from_mapping(raw, "s.yaml")


def test_parses_models_tasks_and_defaults():
    sweep = _sweep(limit=5)
    model = sweep.models[0]
    assert model.name == "b" and model.revisions == ("step1", "step2") and model.dtype == "auto"
    assert model.tokens_for("step1") == 10 and model.tokens_for("step2") is None
    assert not model.trust_remote_code and not model.allow_pickle
    assert [t.name for t in sweep.tasks] == ["t1", "t2"] and sweep.tasks[1].revisions == "final"
    assert sweep.limit == 5 and sweep.seed == 1234
    with pytest.raises(dataclasses.FrozenInstanceError):
        sweep.limit = 3  # type: ignore[misc]


@pytest.mark.parametrize("raw, needle", [
    ({"modles": []}, "did you mean 'models'"),
    ({"limit": "ten"}, "limit: expected int"),
    ({"limit": True}, "limit: expected int"),
    ({"limit": 0}, "limit must be at least 1"),
    ({"num_fewshot": -2}, "num_fewshot must be 0 or more"),
    ({"device": "tpu"}, "'tpu' is not one of auto, cpu, cuda"),
    ({"models": [{"path": "a/b", "dtyp": "float32"}]}, "models[0].dtyp: unknown key; did you mean 'dtype'"),
    ({"models": [{"path": "a/b", "dtype": "fp8"}]}, "models[0].dtype: 'fp8' is not one of"),
    ({"models": [{"path": "a/b"}, {"path": "c/b"}]}, "duplicate model name 'b'"),
    ({"models": [{"name": "x"}]}, "models[0].path: missing"),
    ({"tasks": [{"name": "t", "revisions": 3}]}, "tasks[0].revisions: expected str"),
    ({"tasks": []}, "tasks: is empty"),
])
def test_errors_name_the_key(raw, needle):
    with pytest.raises(UserError, match=None) as info:
        _sweep(**raw)
    assert needle in str(info.value) and "s.yaml" in str(info.value)


def test_malformed_yaml_reports_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  - path: x\n tasks: [a\n")
    with pytest.raises(UserError, match=r"bad.yaml: malformed YAML at line \d+, column \d+"):
        load_sweep(path)


def test_flags_override_the_file():
    sweep = apply_overrides(_sweep(), models="m1@step5,m2", tasks="x,y", limit=7, output="out")
    assert [(m.path, m.revisions) for m in sweep.models] == [("m1", ("step5",)), ("m2", (None,))]
    assert [t.name for t in sweep.tasks] == ["x", "y"] and sweep.limit == 7 and str(sweep.output_dir) == "out"
    with pytest.raises(UserError, match="limit must be at least 1"):
        apply_overrides(_sweep(), limit=0)


def test_model_reference_with_revision():
    assert parse_model_ref("EleutherAI/pythia-70m@step1000") == ("EleutherAI/pythia-70m", "step1000")
    assert parse_model_ref("zoo/m") == ("zoo/m", None)


def test_revisions_of_one_path_on_the_command_line_are_one_model():
    # B6: PATH_OR_ID@REVISION invites several revisions of one model; they merge as in YAML.
    sweep = apply_overrides(None, models="EleutherAI/pythia-70m@step1000,EleutherAI/pythia-70m@step2000,gpt2-org/gpt2",
                            tasks="lambada_openai")
    assert [(m.name, m.revisions) for m in sweep.models] == [
        ("pythia-70m", ("step1000", "step2000")), ("gpt2", (None,))]
    with pytest.raises(UserError, match="given twice"):
        apply_overrides(None, models="EleutherAI/pythia-70m@step1000,EleutherAI/pythia-70m@step1000", tasks="x")


def test_an_install_without_the_checkout_says_where_to_point(tmp_path, monkeypatch):
    # B9: an install that is not editable has no tasks/ or sweeps/ beside the package; a missing
    # include path was dropped silently. Now each says what to do in one line.
    from harness import config
    from harness.cli import main

    monkeypatch.setattr(config, "REPO_ROOT", tmp_path / "site-packages")
    assert config.bundled("tasks") is None
    sweep = sweep_from_mapping({"models": ["EleutherAI/pythia-70m"], "tasks": ["zoo_english"],
                                "include_path": [str(tmp_path / "missing")]}, "sweep.yaml")
    with pytest.raises(UserError, match="include_path .*missing.* is not a folder"):
        sweep.task_include_paths()
    from harness.plan.requests import load_tasks

    with pytest.raises(UserError, match="no tasks/ folder .*--include-path"):
        load_tasks(["zoo_english"], dataclasses.replace(sweep, include_path=()).task_include_paths())
    monkeypatch.setattr("harness.cli.common.DEFAULT_SWEEP", tmp_path / "site-packages" / "sweeps" / "default.yaml")
    assert main(["plan"]) == 2


def test_a_revision_given_twice_in_two_spellings_is_refused():
    with pytest.raises(UserError, match="given twice"):
        apply_overrides(None, models="EleutherAI/pythia-70m,EleutherAI/pythia-70m@main", tasks="x")
