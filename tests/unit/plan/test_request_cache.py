"""The request cache and the parallel build: whatever path a task's requests take (built here, built in
a builder process, loaded from the cache), they equal a fresh single-process build request by request;
an entry that is not whole is rebuilt and said so; the key moves with everything that decides them."""

from __future__ import annotations

import io
import json
import multiprocessing
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pytest

from harness.config import sweep_from_mapping
from harness.errors import UserError
from harness.plan.building import BuildRecipe, _harness_part, build_in_builder, iter_built_tasks
from harness.plan.request_cache import CACHE_ENV, RequestCache, default_cache_dir
from harness.plan.request_key import request_key, task_documents
from harness.plan.requests import build_requests, load_tasks, prepare_task

TASKS = ["tiny_ppl", "tiny_mc", "tiny_gen"]  # every output type: rolling, multiple choice, generation


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """Never the user's ~/.cache: every test gets its own cache folder."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "requests"


@pytest.fixture
def task_dir(tiny_world, tmp_path):
    """A private copy of the tiny tasks (tests edit it), with a group of all three."""
    folder = tmp_path / "tasks"
    shutil.copytree(tiny_world["tasks"], folder)
    for path in folder.glob("*.yaml"):  # the copies must read their own data files
        path.write_text(path.read_text().replace(str(tiny_world["tasks"]), str(folder)))
    (folder / "tiny_all.yaml").write_text("group: tiny_all\ntask:\n" + "".join(f"  - {t}\n" for t in TASKS))
    # a task whose prompt is Python code (`!function`), as many of lm-eval's are
    (folder / "fn_utils.py").write_text('PREFIX = "Q: "\n\n\ndef text(doc):\n    return PREFIX + doc["question"] + "\\nA:"\n')
    (folder / "tiny_fn.yaml").write_text((folder / "tiny_mc.yaml").read_text().replace("task: tiny_mc", "task: tiny_fn")
                                         .replace('doc_to_text: "Question: {{question}}\\nAnswer:"',
                                                  "doc_to_text: !function fn_utils.text"))
    return folder


def _sweep(folder: Path, tasks=None, **extra):
    raw = {"models": ["tiny-org/tiny"], "tasks": tasks or TASKS, "include_path": [str(folder)], **extra}
    return sweep_from_mapping(raw, "test")


def _fresh(folder: Path, names=None, num_fewshot=None, limit=None, seed=1234) -> dict:
    """The reference: every task loaded and built once in this process, as the harness always did."""
    tasks = load_tasks(names or TASKS, [folder])
    return {name: build_requests(name, task, num_fewshot, limit, seed) for name, task in tasks.items()}


def _request(inst) -> tuple:
    return (type(inst).__name__, inst.request_type, repr(inst.arguments), inst.idx, inst.metadata, inst.doc_id,
            inst.task_name, inst.repeats, inst.resps, inst.filtered_resps, inst.doc)


def _assert_same_requests(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        a, b = got[name].instances, want[name].instances
        assert len(a) == len(b), name
        for x, y in zip(a, b):
            assert _request(x) == _request(y), (name, x.doc_id, x.idx)
        assert got[name].num_fewshot == want[name].num_fewshot and got[name].output_type == want[name].output_type


def _built(sweep, stream=None, **kw) -> dict:
    return {b.name: b for b in iter_built_tasks(sweep, stream or io.StringIO(), **kw)}


def test_the_cache_folder_follows_the_environment(cache_dir, monkeypatch):
    assert default_cache_dir() == cache_dir
    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_dir() == Path.home() / ".cache" / "harness" / "requests"


def test_a_cache_hit_equals_a_fresh_build_request_by_request(task_dir, cache_dir):
    sweep = _sweep(task_dir)
    first_out, second_out = io.StringIO(), io.StringIO()
    first = _built(sweep, first_out, workers=1)
    assert not any(b.from_cache for b in first.values()) and len(list(cache_dir.glob("*.arrow"))) == 3
    second = _built(sweep, second_out)
    assert all(b.from_cache for b in second.values())
    assert "requests: 0 task(s) from the cache, 3 built" in first_out.getvalue()
    assert "requests: 3 task(s) from the cache, 0 built" in second_out.getvalue()
    want = _fresh(task_dir)
    _assert_same_requests(first, want)
    _assert_same_requests(second, want)
    # documents are re-attached, one object per document as a build gives them
    mc = second["tiny_mc"].instances
    assert all(a.doc is b.doc for a, b in zip(mc, mc[1:]) if a.doc_id == b.doc_id)
    # the lm-eval task looks as a build leaves it
    assert len(second["tiny_gen"].task.instances) == len(want["tiny_gen"].task.instances)


def _entry(cache_dir: Path, name: str) -> Path:
    (path,) = cache_dir.glob(f"{name}-*.arrow")
    return path


def _truncate(path: Path, other: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble(path: Path, other: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle - 100: middle + 100] = bytes(b ^ 0x5A for b in data[middle - 100: middle + 100])
    path.write_bytes(bytes(data))


def _swap(path: Path, other: Path) -> None:
    shutil.copyfile(other, path)  # another task's whole, valid entry under this task's name


def _empty(path: Path, other: Path) -> None:
    path.write_bytes(b"")


def _decodable_but_changed(path: Path, other: Path) -> None:
    """A valid Arrow file with the entry's metadata whose one context differs: only the digest
    can tell (a disk or a copy that flipped a byte inside a value)."""
    with pa.ipc.open_file(pa.BufferReader(path.read_bytes())) as reader:
        table = reader.read_all()
    column = table.column("arg0").chunk(0)
    texts = column.dictionary.to_pylist()
    texts[0] = texts[0].replace("Question", "Questiom", 1)
    changed = pa.DictionaryArray.from_arrays(column.indices, pa.array(texts, pa.large_string()))
    table = table.set_column(table.column_names.index("arg0"), "arg0", changed)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


@pytest.mark.parametrize("corrupt, reason", [
    (_truncate, "does not read as Arrow"), (_garble, ""), (_swap, "another key"), (_empty, "does not read as Arrow"),
    (_decodable_but_changed, "digest"),
], ids=["truncated", "garbled", "another-task", "empty", "changed-value"])
def test_a_corrupt_entry_is_rebuilt_and_says_so(task_dir, cache_dir, corrupt, reason):
    sweep = _sweep(task_dir)
    _built(sweep, workers=1)
    path = _entry(cache_dir, "tiny_mc")
    corrupt(path, _entry(cache_dir, "tiny_gen"))
    out = io.StringIO()
    again = _built(sweep, out, workers=1)
    lines = [line for line in out.getvalue().splitlines() if "rebuilding it" in line]
    assert len(lines) == 1 and str(path) in lines[0] and reason in lines[0], out.getvalue()
    assert not again["tiny_mc"].from_cache and again["tiny_gen"].from_cache
    _assert_same_requests(again, _fresh(task_dir))
    assert all(b.from_cache for b in _built(sweep).values())  # rebuilt whole, trusted next time


def _key(folder: Path, name="tiny_mc", num_fewshot=None, seed=1234, limit=None) -> str:
    task = load_tasks([name], [folder])[name]
    shots = prepare_task(name, task, num_fewshot, seed)
    return request_key(name, task, shots, seed, limit, task_documents(task, limit), _harness_part())


def test_the_key_changes_with_everything_that_decides_the_requests(task_dir):
    base = _key(task_dir)
    assert _key(task_dir) == base  # stable: loading again is not a change
    assert _key(task_dir, num_fewshot=1) != base
    assert _key(task_dir, seed=7) != base
    assert _key(task_dir, limit=5) != base
    assert _key(task_dir, name="tiny_gen") != base
    for data in ("mc_test.jsonl", "mc_train.jsonl"):  # the documents, and the few-shot pool
        path = task_dir / data
        original = path.read_text()
        rows = [json.loads(line) for line in original.splitlines()]
        rows[-1]["question"] += " (edited)"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        assert _key(task_dir) != base, data
        path.write_text(original)
    yaml = task_dir / "tiny_mc.yaml"
    yaml.write_text(yaml.read_text().replace("Answer:", "A:"))  # the template
    assert _key(task_dir) != base
    function = _key(task_dir, name="tiny_fn")
    helper = task_dir / "fn_utils.py"  # the code a `!function` prompt runs, a helper of it included
    helper.write_text(helper.read_text().replace('PREFIX = "Q: "', 'PREFIX = "Question: "'))
    assert _key(task_dir, name="tiny_fn") != function


def test_parallel_build_equals_a_serial_build(task_dir):
    out = io.StringIO()
    built = _built(_sweep(task_dir, tasks=["tiny_all", "tiny_fn"]), out, workers=2)
    assert "in 2 processes" in out.getvalue() and "in this process" not in out.getvalue(), out.getvalue()
    assert not any(b.from_cache for b in built.values()) and len(built) == 4
    assert built["tiny_fn"].instances[0].args[0].startswith("Q: ")  # its prompt came from fn_utils.py
    _assert_same_requests(built, _fresh(task_dir, ["tiny_all", "tiny_fn"]))
    assert not multiprocessing.active_children()  # the builders are gone


def test_a_group_that_overrides_its_members_is_built_with_its_config(task_dir):
    # Loaded alone, tiny_mc is 2-shot; in this group it is 1-shot: a builder must not take the
    # alone-loaded task for it (the key tells them apart) and loads the group instead.
    (task_dir / "tiny_one.yaml").write_text("group: tiny_one\ntask:\n  - task: tiny_mc\n    num_fewshot: 1\n"
                                            "  - tiny_gen\n")
    out = io.StringIO()
    built = _built(_sweep(task_dir, tasks=["tiny_one"]), out, workers=2)
    assert built["tiny_mc"].num_fewshot == 1 and "in this process" not in out.getvalue(), out.getvalue()
    _assert_same_requests(built, _fresh(task_dir, ["tiny_one"]))


def test_a_builder_builds_only_the_task_the_planner_keyed(task_dir, cache_dir):
    key = _key(task_dir)
    recipe = BuildRecipe("tiny_mc", ("tiny_mc",), (str(task_dir),), None, None, 1234, key, str(cache_dir))
    assert build_in_builder(recipe)[0] == "stored"
    task = load_tasks(["tiny_mc"], [task_dir])["tiny_mc"]
    loaded = RequestCache(cache_dir).load("tiny_mc", key, task_documents(task, None))
    assert [_request(i) for i in loaded] == [_request(i) for i in _fresh(task_dir, ["tiny_mc"])["tiny_mc"].instances]
    status, detail = build_in_builder(BuildRecipe("tiny_mc", ("tiny_mc",), (str(task_dir),), None, None, 7, key,
                                                  str(cache_dir)))
    assert status == "mismatch", detail  # seed 7 is not what the planner keyed


def test_every_task_is_yielded_once_cache_hits_first(task_dir):
    sweep = _sweep(task_dir, tasks=["tiny_all"])
    _built(_sweep(task_dir, tasks=["tiny_gen"]), workers=1)  # one task already in the cache
    order = list(iter_built_tasks(sweep, io.StringIO(), workers=2))
    assert sorted(b.name for b in order) == sorted(TASKS) and sorted(b.index for b in order) == [0, 1, 2]
    assert order[0].name == "tiny_gen" and order[0].from_cache and not any(b.from_cache for b in order[1:])


def test_a_consumer_that_stops_early_stops_the_builders(task_dir):
    # a task that takes seconds to build beside a tiny one: the tiny one comes first (smallest
    # first), and closing the iterator then must not wait for the big one
    rows = (task_dir / "mc_test.jsonl").read_text().splitlines()
    (task_dir / "big_test.jsonl").write_text("".join(rows[i % len(rows)] + "\n" for i in range(3000)))
    (task_dir / "tiny_big.yaml").write_text((task_dir / "tiny_mc.yaml").read_text()
                                            .replace("task: tiny_mc", "task: tiny_big").replace("mc_test.jsonl", "big_test.jsonl"))
    tasks = iter_built_tasks(_sweep(task_dir, tasks=["tiny_big", "tiny_mc"]), io.StringIO(), workers=2)
    assert next(tasks).name == "tiny_mc"
    assert multiprocessing.active_children()  # the big one is still being built
    started = time.monotonic()
    tasks.close()
    assert not multiprocessing.active_children() and time.monotonic() - started < 3


def test_bad_data_in_a_builder_is_the_users_one_line(task_dir):
    # lm-eval checks the first document when it loads a task; the second one fails the build
    rows = [{"question": "1 plus 1 is", "choices": ["2", "3"], "label": 0}, {"question": "x", "choices": None, "label": 0}]
    (task_dir / "mc_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = io.StringIO()
    with pytest.raises(UserError, match="task 'tiny_mc': building requests failed"):
        _built(_sweep(task_dir), out, workers=2)
    assert "in 2 processes" in out.getvalue()  # it failed in a builder, and is told as if built here
    assert not multiprocessing.active_children()


def test_an_unwritable_cache_folder_builds_anyway_and_says_so(task_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "sub"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    out = io.StringIO()
    built = _built(_sweep(task_dir), out, workers=1)
    assert "is not writable" in out.getvalue()
    _assert_same_requests(built, _fresh(task_dir))
    assert not list((tmp_path / "tmp").iterdir())  # the run's own folder is gone with it
