"""The pure scheduling policy the driver and the simulator share."""

from __future__ import annotations

from harness.scheduling.policy import ShardQueue, WorkItem, choose_model


def test_longest_first_and_requeue():
    queue = ShardQueue([WorkItem("a", "m", 1.0), WorkItem("b", "m", 5.0), WorkItem("c", "n", 2.0)])
    assert queue.pop("m").key == "b"
    assert queue.queued() == 2 and queue.queued("m") == 1
    queue.push(WorkItem("b", "m", 5.0))
    assert queue.pop("m").key == "b" and queue.pop("m").key == "a" and queue.pop("m") is None
    assert queue.queued_cost() == {"n": 2.0}


def test_free_slot_serves_the_most_work_per_replica():
    assert choose_model({"small": 10.0, "big": 100.0}, {}) == "big"
    assert choose_model({"small": 10.0, "big": 100.0}, {"big": 20}) == "small"
    assert choose_model({"big": 100.0}, {}, fits=lambda m: m != "big") is None


def test_min_share_keeps_a_replica_from_starting_for_too_little_work():
    queued = {"a": 10.0, "b": 6.0}
    held = {"a": 1, "b": 1}
    assert choose_model(queued, held) == "a"  # 10/2 per slot beats 6/2
    # a second replica of `a` would get 5 of work, less than it computes while loading: not worth it
    assert choose_model(queued, held, min_share={"a": 6.0}) == "b"
    assert choose_model(queued, held, min_share={"a": 6.0, "b": 6.0}) is None
    # a model that holds no replica is always eligible, or its shards would never run
    assert choose_model({"c": 1.0}, {}, min_share={"c": 100.0}) == "c"
