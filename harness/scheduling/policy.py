"""The pure scheduling policy shared by the Ray driver and the simulator.

No Ray and no clock here: the driver (and `harness.scheduling.simulator`) call these functions when a
slot frees up or a shard finishes, so the policy is tested and benchmarked without a cluster.

Policy
* Within a model, the longest (most expensive) remaining shard goes first: long shards started
  late are what stretch a makespan.
* When a slot is free, it serves the model whose remaining work per replica is largest once the
  slot joins it. That grows replica counts in proportion to each model's share of the remaining
  cost, and a model whose queue is empty loses its replicas to the ones still working.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkItem:
    """One shard as the scheduler sees it: a key, the model that scores it and its cost (FLOPs)."""

    key: str
    model: str
    cost: float


class ShardQueue:
    """Per-model queues of shards, longest first, with requeueing of lost shards.

    Example:
        >>> q = ShardQueue([WorkItem("a", "m", 1.0), WorkItem("b", "m", 5.0)])
        >>> q.pop("m").key
        'b'
    """

    def __init__(self, items: Iterable[WorkItem]) -> None:
        self._heaps: dict[str, list[tuple[float, str, WorkItem]]] = {}
        self._remaining_cost: dict[str, float] = {}
        for item in items:
            self.push(item)

    def push(self, item: WorkItem) -> None:
        """Add a shard (new, or back from a worker that died or timed out)."""
        heapq.heappush(self._heaps.setdefault(item.model, []), (-item.cost, item.key, item))
        self._remaining_cost[item.model] = self._remaining_cost.get(item.model, 0.0) + item.cost

    def pop(self, model: str) -> WorkItem | None:
        """The longest remaining shard of `model`, or None when its queue is empty."""
        heap = self._heaps.get(model)
        if not heap:
            return None
        item = heapq.heappop(heap)[2]
        self._remaining_cost[model] -= item.cost
        return item

    def queued(self, model: str | None = None) -> int:
        """Shards waiting (for one model, or in all)."""
        if model is not None:
            return len(self._heaps.get(model, ()))
        return sum(len(h) for h in self._heaps.values())

    def queued_cost(self) -> dict[str, float]:
        """Remaining queued cost per model that still has shards waiting."""
        return {m: self._remaining_cost[m] for m, h in self._heaps.items() if h}

    def __bool__(self) -> bool:
        return self.queued() > 0


def choose_model(
    queued_cost: Mapping[str, float],
    replicas: Mapping[str, int],
    fits: Callable[[str], bool] = lambda model: True,
    *,
    size: Mapping[str, float] | None = None,
    min_share: Mapping[str, float] | None = None,
) -> str | None:
    """Which model a free slot should serve next.

    Args:
        queued_cost: remaining queued cost per model (models with an empty queue are ignored).
        replicas: replicas each model holds now, not counting the free slot.
        fits: whether a model can be placed on the free slot (memory, GPUs).
        size: devices one replica of each model holds (a GPU fraction, or several GPUs); default 1.
            With replicas of different sizes, cost per *device* is what measures time left:
            a 1/8-GPU replica computes an eighth as fast as a whole-GPU one.
        min_share: per model, the least queued cost per replica (after adding this slot) that
            makes a new replica worth its start-up: about what one replica computes while it
            loads its weights. Below it the model's own replicas finish the queue before a new
            one would be ready, and starting it only wastes the slot. A model holding no replica
            is always eligible. Default: no minimum.

    Returns:
        The model with the largest queued cost per device after adding this slot, or None when
        no model with work fits (or is worth a new replica). Ties go to the lexicographically
        first name (deterministic).

    Example:
        >>> choose_model({"a": 10.0, "b": 6.0}, {"a": 1})  # b holds no replica: 6 per slot beats 5
        'b'
        >>> choose_model({"a": 10.0, "b": 6.0}, {"a": 1, "b": 1})  # 5 per slot against 3
        'a'
        >>> choose_model({"a": 10.0, "b": 6.0}, {"a": 1, "b": 1}, min_share={"a": 6.0})  # a: 5 < 6
        'b'
    """
    best, best_share = None, -1.0
    for model in sorted(queued_cost):
        cost, held = queued_cost[model], replicas.get(model, 0) + 1
        # A model with no replica at all is always worth one, or its shards would never run.
        if min_share is not None and held > 1 and cost / held < min_share.get(model, 0.0):
            continue
        if not fits(model):
            continue
        share = cost / (held * (size.get(model, 1.0) if size is not None else 1.0))
        if share > best_share:
            best, best_share = model, share
    return best
