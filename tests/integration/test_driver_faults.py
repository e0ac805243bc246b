"""Faults with real Ray: a worker node dies mid-run, shards hang or fail, the run still finishes.

Node loss runs the real driver, models and lm-eval scoring on a `ray.cluster_utils.Cluster`
(a head and two worker nodes on 127.0.0.1). Each shard is slowed by a fixed sleep before real
scoring, so that shards are in flight when the node goes. Hangs and failures use a worker with
a fake request runner (the scheduler is under test there, not the model).
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from harness.engine import driver as driver_module
from harness.config import sweep_from_mapping
from harness.engine.driver import Driver, RunState
from harness.plan.shards import build_plan
from harness.engine.progress import Progress
from harness.engine.run import run_sweep
from harness.backends.loading import ParamCounts
from harness.engine.worker import ShardWorker
from tests.tiny import TASK_NAMES

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _sweep(world, out: Path, **extra):
    raw = {"models": [str(world["small"])], "tasks": list(TASK_NAMES), "include_path": [str(world["tasks"])],
           "output": str(out), "docs_per_shard": 1, "device": "cpu", "batch_size": 4, **extra}
    return sweep_from_mapping(raw, "test")


def _slow_worker(delay_s: float) -> type:
    """The real worker, `delay_s` slower per shard (a local class: Ray ships it by value)."""

    class SlowWorker(ShardWorker):
        def run(self, instances):
            time.sleep(delay_s)
            return super().run(instances)

    return SlowWorker


@pytest.fixture
def cluster(tmp_path):
    """A head with no CPUs (it runs only the driver's connection) and two 1-CPU worker nodes."""
    from ray.cluster_utils import Cluster

    head = {"num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False}
    c = Cluster(initialize_head=True, connect=False, head_node_args=head)
    nodes = [c.add_node(num_cpus=1, node_ip_address="127.0.0.1") for _ in range(2)]
    c.wait_for_nodes()
    yield c, nodes
    c.shutdown()


def _scores(out: Path) -> pd.DataFrame:
    scores = pd.read_parquet(out / "scores.parquet")
    return scores.sort_values(["task", "metric", "filter"]).reset_index(drop=True)


def _run_in_thread(sweep) -> tuple[threading.Thread, dict]:
    """run_sweep in a thread: Ray lets only the main thread add nodes to a Cluster."""
    outcome: dict[str, object] = {}

    def drive() -> None:
        try:
            outcome["rc"] = run_sweep(sweep, analyze=False, stream=io.StringIO())
        except BaseException as exc:  # noqa: BLE001 - reported by the caller's assertion
            outcome["rc"] = exc

    runner = threading.Thread(target=drive, daemon=True)
    runner.start()
    return runner, outcome


def _wait_for_files(out: Path, n: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while len(list(out.rglob("requests/**/*.parquet"))) < n and time.monotonic() < deadline:
        time.sleep(0.05)


def test_node_loss_node_join_and_total_loss(tiny_world, tmp_path, cluster, monkeypatch):
    c, (_, doomed) = cluster
    reference = tmp_path / "undisturbed"
    assert run_sweep(_sweep(tiny_world, reference, address=c.address), analyze=False, stream=io.StringIO()) == 0

    # 1. A worker node crashes with a shard in flight and never comes back: the run shrinks to
    #    the node that is left. Ray reports the actor dead within ~2 s but the node only after
    #    its health checks (~15 s): a replacement started meanwhile waits on a dead node's CPU
    #    and must give its shard back, or the run would stall for shard_timeout_s (an hour).
    out = tmp_path / "disturbed"
    monkeypatch.setattr(driver_module, "default_worker_class", lambda: _slow_worker(0.25))
    started = time.time()
    runner, outcome = _run_in_thread(_sweep(tiny_world, out, address=c.address))
    _wait_for_files(out, 3)
    removed = time.time()
    c.remove_node(doomed, allow_graceful=False)
    runner.join(timeout=120)
    assert outcome.get("rc") == 0, outcome
    finished = time.time()

    manifest = json.loads((out / "manifest.json").read_text())
    entries = manifest["shards"]
    assert manifest["status"] == "done" and {e["status"] for e in entries} == {"done"}
    files = list(out.rglob("requests/**/*.parquet"))
    assert sorted(p.stem for p in files) == sorted(e["key"] for e in entries)  # each shard exactly once
    retried = [e for e in entries if e["attempts"] > 1]
    assert retried, "no shard was in flight on the lost node"
    pd.testing.assert_frame_equal(_scores(reference), _scores(out))
    mtime = {p.stem: p.stat().st_mtime for p in files}
    recovered = max(mtime[e["key"]] for e in retried) - removed
    print(f"\nnode loss: removed {removed - started:.1f} s into the run; the lost shard rewritten "
          f"{recovered:.2f} s after; run done {finished - removed:.1f} s after the removal")

    # 2. A node joins mid-run: a replica starts on it (the cluster has one worker node now).
    grown = tmp_path / "grown"
    monkeypatch.setattr(driver_module, "default_worker_class", lambda: _fake_worker(tmp_path, delay_s=0.4))
    runner, outcome = _run_in_thread(_sweep(tiny_world, grown, address=c.address))
    _wait_for_files(grown, 1)
    c.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    added = time.time()
    runner.join(timeout=120)
    assert outcome.get("rc") == 0, outcome
    entries = json.loads((grown / "manifest.json").read_text())["shards"]
    mtime = {p.stem: p.stat().st_mtime for p in grown.rglob("requests/**/*.parquet")}
    before = {e["worker"] for e in entries if mtime[e["key"]] < added}
    after = [e["worker"] for e in entries if mtime[e["key"]] > added]
    assert len(before) == 1 and len(set(after)) == 2, (before, after)
    first_new = min(mtime[e["key"]] for e in entries if e["worker"] not in before) - added
    print(f"node join: the new node's replica wrote its first shard {first_new:.2f} s after the node "
          f"was up; it wrote {sum(w not in before for w in after)} of {len(entries)} shards")

    # 3. Every worker node goes: the driver waits for capacity instead of failing, and finishes
    #    on the node that joins later.
    gone = tmp_path / "gone"
    monkeypatch.setattr(driver_module, "default_worker_class", lambda: _fake_worker(tmp_path, delay_s=0.1))
    runner, outcome = _run_in_thread(_sweep(tiny_world, gone, address=c.address))
    _wait_for_files(gone, 2)
    for node in list(c.worker_nodes):
        c.remove_node(node)
    time.sleep(1.0)
    c.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    back = time.time()
    runner.join(timeout=120)
    assert outcome.get("rc") == 0, outcome
    entries = json.loads((gone / "manifest.json").read_text())["shards"]
    assert {e["status"] for e in entries} == {"done"} and any(e["attempts"] > 1 for e in entries)
    resumed = min(p.stat().st_mtime for p in gone.rglob("requests/**/*.parquet") if p.stat().st_mtime > back)
    print(f"all nodes lost: work resumed {resumed - back:.2f} s after a node came back")


# -- hangs and failures ----------------------------------------------------------------------------


def _fake_worker(markers: Path, delay_s: float = 0.0, faults: bool = False) -> type:
    """A worker without a model: fixed log-likelihoods after `delay_s`. With `faults`, on tiny_mc
    it hangs on document 0 every time, on document 1 only the first time, and raises on document 2."""

    class FakeRunner:
        device = "cpu"
        params = ParamCounts(total=1000, nonembedding=900)

        def run(self, instances):
            time.sleep(delay_s)
            docs = {(i.metadata[0], i.doc_id) for i in instances} if faults else set()
            first_time = markers / "doc1"
            if ("tiny_mc", 0) in docs:
                time.sleep(600)
            if ("tiny_mc", 1) in docs and not first_time.exists():
                first_time.touch()
                time.sleep(600)
            if ("tiny_mc", 2) in docs:
                raise RuntimeError("injected failure on doc 2")
            return [{"loglikelihood": None if i.request_type == "generate_until" else -1.5 - 0.1 * i.idx,
                     "is_greedy": False if i.request_type == "loglikelihood" else None,
                     "generation": "7" if i.request_type == "generate_until" else None, "n_tokens": 3}
                    for i in instances]

    class FaultyWorker(ShardWorker):
        def __init__(self, *args, **kwargs):  # no torch, no model: starts in a blink
            self.batch_size, self.load_error, self.load_seconds = 1, None, 0.0
            self.runner = FakeRunner()

    return FaultyWorker


def test_hung_and_failing_shards_are_retried_then_failed(tiny_world, tmp_path, monkeypatch):
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setattr(driver_module, "default_worker_class", lambda: _fake_worker(markers, faults=True))
    out = tmp_path / "run"
    sweep = _sweep(tiny_world, out, tasks=["tiny_mc", "tiny_ppl"], limit=4, workers=2,
                   shard_timeout_s=2.0, max_attempts=3)
    started = time.monotonic()
    assert run_sweep(sweep, analyze=False, stream=io.StringIO()) == 1
    elapsed = time.monotonic() - started

    docs = {s.key: (s.task, s.doc_ids) for s in build_plan(sweep).shards}
    entries = {docs[e["key"]]: e for e in json.loads((out / "manifest.json").read_text())["shards"]}
    hung = entries[("tiny_mc", (0,))]
    assert hung["status"] == "failed" and hung["attempts"] == 3 and "timed out after 2 s" in hung["error"]
    once = entries[("tiny_mc", (1,))]
    assert once["status"] == "done" and once["attempts"] == 2
    raising = entries[("tiny_mc", (2,))]
    assert raising["status"] == "failed" and raising["attempts"] == 3
    assert "injected failure on doc 2" in raising["error"]
    rest = [e for k, e in entries.items() if k not in {("tiny_mc", (0,)), ("tiny_mc", (1,)), ("tiny_mc", (2,))}]
    assert len(rest) == 5 and all(e["status"] == "done" and e["attempts"] == 1 for e in rest)
    scores = pd.read_parquet(out / "scores.parquet")
    assert set(scores.task) == {"tiny_ppl"}  # tiny_mc is incomplete: no partial score
    assert elapsed < 90, f"the run took {elapsed:.0f} s"
    print(f"\nhung/failing shards: run finished in {elapsed:.1f} s")


def test_a_replica_ray_cannot_place_does_not_stall_the_run(tiny_world, tmp_path):
    # Another job holds the only CPU: the driver's account (from ray.nodes()) says a replica fits,
    # Ray keeps it pending. It must time out, be retried, and fail its model with the reason.
    import ray

    sweep = _sweep(tiny_world, tmp_path / "run", tasks=["tiny_mc"], limit=2, max_attempts=2)
    plan = build_plan(sweep)
    progress = Progress(Counter(s.model_revision.key for s in plan.shards), 0, stream=io.StringIO())
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:

        @ray.remote(num_cpus=1)
        class Squatter:
            def ping(self) -> bool:
                return True

        squatter = Squatter.remote()
        assert ray.get(squatter.ping.remote())
        started = time.monotonic()
        state = Driver(plan, tmp_path / "run", progress, RunState(), worker_cls=_fake_worker(tmp_path),
                       start_timeout_s=1.5).execute(plan.shards)
        elapsed = time.monotonic() - started
    finally:
        ray.shutdown()
    outcomes = list(state.outcomes.values())
    assert len(outcomes) == 2 and all(o.status == "failed" for o in outcomes)
    assert all("no replica started in 2 tries" in o.error and "did not start within 1.5 s" in o.error
               for o in outcomes)
    assert [e["event"] for e in state.events] == ["start_timeout", "start_timeout"]
    assert elapsed < 30, f"{elapsed:.0f} s"


def test_a_slow_load_counts_against_the_start_timeout_not_the_shard_timeout(tiny_world, tmp_path):
    # B1: the first replica of a model is handed a shard before its weights load. A load longer
    # than shard_timeout_s (a large hub model downloading) must not be killed as a shard timeout.
    import ray

    fake = _fake_worker(tmp_path)

    class SlowLoading(fake):
        def __init__(self, *args, **kwargs):
            time.sleep(4.0)  # "downloading weights": longer than the 1.5 s shard timeout
            super().__init__(*args, **kwargs)

    sweep = _sweep(tiny_world, tmp_path / "run", tasks=["tiny_mc"], limit=2, workers=1,
                   shard_timeout_s=1.5, max_attempts=2)
    plan = build_plan(sweep)
    progress = Progress(Counter(s.model_revision.key for s in plan.shards), 0, stream=io.StringIO())
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        state = Driver(plan, tmp_path / "run", progress, RunState(), worker_cls=SlowLoading,
                       start_timeout_s=60).execute(plan.shards)
    finally:
        ray.shutdown()
    outcomes = list(state.outcomes.values())
    assert len(outcomes) == 2 and all(o.status == "done" and o.attempts == 1 for o in outcomes), outcomes
    assert "shard_timeout" not in [e["event"] for e in state.events]
    ready = [e for e in state.events if e["event"] == "replica_ready"]
    assert ready and ready[0]["load_s"] >= 4.0
