"""Plan the forward passes of the fast backend: shared prefixes, packed rows, length buckets.

Pure Python on token lists (no torch here), so the plan is tested and reasoned about without a model.

What a request costs. lm-eval's HF backend feeds `(context + continuation)[-(L+1):][:-1]` and scores
the last `len(continuation)` logits. Split that input in two:
  * prefix: the inputs before the first scored position (they only condition);
  * tail:   the last context token plus the continuation minus its last token; the logits at the
            tail positions predict exactly the continuation tokens (the targets).
A 4-choice item has one prefix and four tails. Running the prefix once, with each tail attending
to the prefix and causally to itself only (and position ids that restart after the prefix for each
tail), computes exactly what four separate full passes compute: that is the saving.

Rows. A *unit* is one prefix with the tails that share it (a tail with an empty prefix is a unit of
its own: e.g. a rolling-perplexity window). Units are packed into rows of at most `capacity` tokens
(best fit, longest first), each unit attending only within itself, so short documents stop paying
for padding. Rows are then batched longest first under a token budget, which keeps the padding
inside a batch small and lets short rows fill a larger batch.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Scored:
    """One loglikelihood request reduced to what the model must compute."""

    prefix: tuple[int, ...]
    tail: tuple[int, ...]
    targets: tuple[int, ...]


@dataclass(frozen=True)
class Unit:
    """A prefix and the requests whose tails share it: (request index, tail, targets) each."""

    prefix: tuple[int, ...]
    members: tuple[tuple[int, tuple[int, ...], tuple[int, ...]], ...]

    @property
    def length(self) -> int:
        return len(self.prefix) + sum(len(tail) for _, tail, _ in self.members)


@dataclass(frozen=True)
class Row:
    """One sequence of the batch: token ids, position ids, and who may attend to whom.

    `unit[i]` says which unit position i belongs to, `part[i]` is 0 for a prefix token and j >= 1
    for the j-th tail of that unit; position q may attend to k when both share a unit, k <= q, and
    k is a prefix token or in q's own tail. `scored` lists (position, target token, request index).
    """

    tokens: tuple[int, ...]
    positions: tuple[int, ...]
    unit: tuple[int, ...]
    part: tuple[int, ...]
    scored: tuple[tuple[int, int, int], ...]


def split_request(context: Sequence[int], continuation: Sequence[int], max_length: int) -> Scored:
    """The prefix / tail / targets of one request, truncated from the left as lm-eval's HFLM does."""
    if not context or not continuation:
        raise ValueError("context and continuation must both be non-empty token lists")
    if len(continuation) > max_length:
        raise ValueError(f"continuation of {len(continuation)} tokens exceeds max_length {max_length}")
    seq = (list(context) + list(continuation))[-(max_length + 1):]
    n, c = len(seq), len(continuation)
    return Scored(prefix=tuple(seq[: n - 1 - c]), tail=tuple(seq[n - 1 - c : n - 1]), targets=tuple(seq[n - c :]))


def make_units(requests: Sequence[Scored], capacity: int, share_prefixes: bool = True) -> list[Unit]:
    """Group requests by identical prefix; split a group whose tails overflow `capacity`.

    With `share_prefixes=False` every request is its own unit (the plain, HFLM-like layout).
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, req in enumerate(requests):
        key = req.prefix if share_prefixes and req.prefix else (("solo", i),)  # type: ignore[assignment]
        groups.setdefault(key, []).append(i)
    units: list[Unit] = []
    for idxs in groups.values():
        prefix = requests[idxs[0]].prefix
        members: list[tuple[int, tuple[int, ...], tuple[int, ...]]] = []
        used = len(prefix)
        for i in idxs:
            tail = requests[i].tail
            if members and used + len(tail) > capacity:
                units.append(Unit(prefix, tuple(members)))
                members, used = [], len(prefix)
            members.append((i, tail, requests[i].targets))
            used += len(tail)
        units.append(Unit(prefix, tuple(members)))
    return units


def pack_rows(units: Sequence[Unit], capacity: int, pack: bool = True) -> list[Row]:
    """Best-fit-decreasing packing of units into rows of at most max(capacity, longest unit) tokens."""
    order = sorted(range(len(units)), key=lambda u: -units[u].length)
    if not pack:
        return [_layout([units[u]]) for u in order]
    capacity = max([capacity] + [units[u].length for u in order[:1]])
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (room left, bin index)
    for u in order:
        need = units[u].length
        k = bisect.bisect_left(free, (need, -1))
        if k < len(free):
            room, b = free.pop(k)
            bins[b].append(u)
            bisect.insort(free, (room - need, b))
        else:
            bins.append([u])
            bisect.insort(free, (capacity - need, len(bins) - 1))
    return [_layout([units[u] for u in b]) for b in bins]


def _layout(units: Sequence[Unit]) -> Row:
    tokens: list[int] = []
    positions: list[int] = []
    unit_ids: list[int] = []
    parts: list[int] = []
    scored: list[tuple[int, int, int]] = []
    for u, unit in enumerate(units):
        p = len(unit.prefix)
        tokens += unit.prefix
        positions += range(p)
        unit_ids += [u] * p
        parts += [0] * p
        for j, (req, tail, targets) in enumerate(unit.members, start=1):
            start = len(tokens)
            tokens += tail
            positions += range(p, p + len(tail))
            unit_ids += [u] * len(tail)
            parts += [j] * len(tail)
            scored += [(start + t, targets[t], req) for t in range(len(tail))]
    return Row(tuple(tokens), tuple(positions), tuple(unit_ids), tuple(parts), tuple(scored))


def batches(rows: Sequence[Row], max_tokens: int) -> list[list[Row]]:
    """Rows longest first, in groups whose padded size (rows x widest row) stays within max_tokens."""
    ordered = sorted(rows, key=lambda r: -len(r.tokens))
    out: list[list[Row]] = []
    for row in ordered:
        if out and (len(out[-1]) + 1) * len(out[-1][0].tokens) <= max_tokens:
            out[-1].append(row)
        else:
            out.append([row])
    return out
