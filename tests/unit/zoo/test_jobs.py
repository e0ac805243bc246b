"""The jobs the zoo sends to worker processes: frozen dataclasses that survive pickling, built by
`build` (training) and `evaluate_ladder` (evaluation) without training or loading anything."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import pytest

from harness.zoo import ladder as ladder_mod
from harness.zoo.ladder import CPU_LADDER, TrainJob


def _cpu_ladder_jobs(monkeypatch, tmp_path: Path, **build_kwargs) -> list:
    """The jobs `build` hands to its runner for the CPU ladder; corpus, tokenizer and stream stubbed out."""
    import harness.zoo.corpus

    captured: list = []
    monkeypatch.setattr(harness.zoo.corpus, "english_documents", lambda: ([], []))
    monkeypatch.setattr(ladder_mod, "_write_tokenizer", lambda *a, **k: None)
    monkeypatch.setattr(ladder_mod, "_write_stream", lambda *a, **k: None)
    monkeypatch.setattr(ladder_mod, "_write_heldout", lambda *a, **k: None)
    monkeypatch.setattr(ladder_mod, "_run_train_jobs", lambda jobs, *a, **k: captured.extend(jobs) or [])
    assert ladder_mod.build(tmp_path / "zoo", log=lambda _: None, **build_kwargs) == []
    return captured


def test_build_sends_one_train_job_per_size_of_the_cpu_ladder(monkeypatch, tmp_path):
    jobs = _cpu_ladder_jobs(monkeypatch, tmp_path, seed=7, workers=2)
    assert all(type(job) is TrainJob for job in jobs)
    # largest first, so the longest job starts first
    assert [job.size.name for job in jobs] == ["zoo-5", "zoo-4", "zoo-3", "zoo-2", "zoo-1"]
    by_name = {s["name"]: s for s in CPU_LADDER.sizes}
    for job in jobs:
        assert dataclasses.asdict(job.size) == by_name[job.size.name]
        assert list(job.checkpoint_steps) == CPU_LADDER.checkpoint_steps(by_name[job.size.name])  # its own budgets
        assert (job.seed, job.device, job.threads, job.probe) == (7, "cpu", 1, True)
        assert job.out_dir == str(tmp_path / "zoo") and job.work_dir == tmp_path / "zoo" / "_build"
        assert (job.train_config.seq_len, job.train_config.batch_size) == (256, 8)
        assert job.train_config.autocast_min_width is None
    assert (tmp_path / "zoo" / "build_log.jsonl").read_text() == ""
    assert not (tmp_path / "zoo" / "_build").exists()


def test_one_worker_leaves_torch_threads_alone(monkeypatch, tmp_path):
    jobs = _cpu_ladder_jobs(monkeypatch, tmp_path, workers=1, probe=False)
    assert {job.threads for job in jobs} == {None} and not any(job.probe for job in jobs)
    jobs = _cpu_ladder_jobs(monkeypatch, tmp_path, workers=2, threads=3)
    assert {job.threads for job in jobs} == {3}


def test_train_job_round_trips_through_pickle():
    from harness.zoo.train import TrainConfig

    cfg = TrainConfig(seq_len=CPU_LADDER.seq_len, batch_size=CPU_LADDER.batch_size)
    for job in ladder_mod.train_jobs(CPU_LADDER, "zoo", 0, "cpu", None, 2, True, cfg):
        again = pickle.loads(pickle.dumps(job))
        assert again == job and type(again) is TrainJob and hash(again) == hash(job)
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.seed = 1


def _fake_ladder(root: Path) -> None:
    for name, n_params in (("small", 10), ("big", 20)):
        for step in (1, 2):
            folder = root / name / f"step{step}"
            folder.mkdir(parents=True)
            meta = {"tokens_trained": step * 100, "n_params": n_params, "n_params_nonembedding": n_params // 2,
                    "step": step}
            (folder / "harness.json").write_text(json.dumps(meta))


def test_eval_jobs_are_frozen_and_round_trip_through_pickle(tmp_path):
    from harness.zoo.eval import FEWSHOT_TASKS, PPL_TASK, EvalJob, eval_jobs

    _fake_ladder(tmp_path)
    jobs = eval_jobs(tmp_path, limit=5, workers=2)
    assert all(type(job) is EvalJob for job in jobs)
    assert [(j.checkpoint["name"], j.checkpoint["revision"]) for j in jobs] == [
        ("small", "step1"), ("small", "step2"), ("big", "step1"), ("big", "step2")]
    assert [j.tasks for j in jobs] == [(PPL_TASK,), (PPL_TASK, *FEWSHOT_TASKS)] * 2
    assert {(j.root, j.limit, j.threads) for j in jobs} == {(str(tmp_path), 5, 1)}
    assert jobs[1].folder == tmp_path / "small" / "step2"
    for job in jobs:
        assert pickle.loads(pickle.dumps(job)) == job
    with pytest.raises(dataclasses.FrozenInstanceError):
        jobs[0].limit = None
    assert {j.threads for j in eval_jobs(tmp_path)} == {None}


def test_tasks_dir_is_the_repository_task_folder():
    from harness.zoo.eval import FEWSHOT_TASKS, PPL_TASK, TASKS_DIR

    assert TASKS_DIR == Path(__file__).resolve().parents[3] / "tasks"
    for task in (PPL_TASK, *FEWSHOT_TASKS):
        assert (TASKS_DIR / "zoo" / f"{task}.yaml").is_file()
