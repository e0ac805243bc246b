"""Plan the forward passes of the fast backend: shared prefixes, packed rows, length buckets.

Pure Python on token lists (no torch here), so the plan is tested and reasoned about without a model.

What a request costs. lm-eval's HF backend feeds `(context + continuation)[-(L+1):][:-1]` and scores
the last `len(continuation)` logits. Split that input in two:
  * prefix: the inputs before the first scored position (they only condition);
  * tail:   the last context token plus the continuation minus its last token; the logits at the
            tail positions predict exactly the continuation tokens (the targets).
A 4-choice item has one prefix and four tails. Running the prefix once, with each tail attending
to the prefix and causally to itself only (and position ids that restart after the prefix for each
tail), computes exactly what four separate full passes compute: that is the saving. One level up,
items whose prefixes begin with the same tokens (the same few-shot examples) share that root.

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
class Branch:
    """A prefix and the requests whose tails share it: (request index, tail, targets) each."""

    prefix: tuple[int, ...]
    members: tuple[tuple[int, tuple[int, ...], tuple[int, ...]], ...]


@dataclass(frozen=True)
class Unit:
    """Branches whose prefixes all start with `root` (e.g. the same few-shot examples).

    The root runs once for all branches, each branch's own rest of the prefix (its body) once for
    its tails. One branch whose prefix is the root is the plain "one context, k choices" case.
    """

    root: tuple[int, ...]
    branches: tuple[Branch, ...]

    @property
    def length(self) -> int:
        return len(self.root) + sum(len(b.prefix) - len(self.root) + sum(len(t) for _, t, _ in b.members)
                                    for b in self.branches)

    @property
    def members(self) -> tuple[tuple[int, tuple[int, ...], tuple[int, ...]], ...]:
        return tuple(m for b in self.branches for m in b.members)


@dataclass(frozen=True)
class Row:
    """One sequence of the batch: token ids, position ids, and who may attend to whom.

    `unit[i]` is the unit of position i; `branch[i]` is 0 for a root token and b >= 1 for the body
    and tails of the unit's b-th branch; `part[i]` is 0 outside tails and t >= 1 (unique in the
    unit) for the t-th tail. Position q may attend to k <= q of its own unit when k is a root
    token, or k is in q's branch and is a body token or in q's own tail.
    `scored` lists (position, target token, request index).
    """

    tokens: tuple[int, ...]
    positions: tuple[int, ...]
    unit: tuple[int, ...]
    branch: tuple[int, ...]
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


def make_units(requests: Sequence[Scored], capacity: int, share_prefixes: bool = True,
               min_root: int = 16) -> list[Unit]:
    """Group requests by identical prefix (branches), then branches by a common root.

    A branch whose tails overflow `capacity` is split. Branches whose prefixes share at least
    `min_root` leading tokens and half their length (sorted, so neighbours share most) join one
    unit while it fits `capacity`. With `share_prefixes=False` every request is its own unit (HFLM's layout).
    """
    groups: dict[tuple, list[int]] = {}
    for i, req in enumerate(requests):
        key = req.prefix if share_prefixes and req.prefix else (("solo", i),)
        groups.setdefault(key, []).append(i)
    branches: list[Branch] = []
    for idxs in groups.values():
        prefix = requests[idxs[0]].prefix
        members: list[tuple[int, tuple[int, ...], tuple[int, ...]]] = []
        used = len(prefix)
        for i in idxs:
            tail = requests[i].tail
            if members and used + len(tail) > capacity:
                branches.append(Branch(prefix, tuple(members)))
                members, used = [], len(prefix)
            members.append((i, tail, requests[i].targets))
            used += len(tail)
        branches.append(Branch(prefix, tuple(members)))
    if not share_prefixes:
        return [Unit(b.prefix, (b,)) for b in branches]
    units: list[Unit] = []
    for b in sorted(branches, key=lambda b: b.prefix):
        if units and units[-1].root and b.prefix:
            root = _common_prefix(units[-1].root, b.prefix)
            grown = Unit(root, units[-1].branches + (b,))
            # Share only a root that is most of the prefix: a short accidental overlap saves little
            # and makes long, ragged units that pad and attend more than they save.
            if len(root) >= max(min_root, len(b.prefix) // 2) and grown.length <= capacity:
                units[-1] = grown
                continue
        units.append(Unit(b.prefix, (b,)))
    return units


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return tuple(a[:n])


def pack_rows(units: Sequence[Unit], capacity: int, pack: bool = True) -> list[Row]:
    """Best-fit-decreasing packing of units into rows of at most max(capacity, longest unit) tokens."""
    order = sorted(range(len(units)), key=lambda u: -units[u].length)
    if not pack:
        return [_row_of([units[u]]) for u in order]
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
    return [_row_of([units[u] for u in b]) for b in bins]


def _row_of(units: Sequence[Unit]) -> Row:
    tokens: list[int] = []
    positions: list[int] = []
    unit_ids: list[int] = []
    branch_ids: list[int] = []
    parts: list[int] = []
    scored: list[tuple[int, int, int]] = []

    def put(toks: Sequence[int], first_pos: int, u: int, b: int, t: int) -> int:
        start = len(tokens)
        tokens.extend(toks)
        positions.extend(range(first_pos, first_pos + len(toks)))
        unit_ids.extend([u] * len(toks))
        branch_ids.extend([b] * len(toks))
        parts.extend([t] * len(toks))
        return start

    for u, unit in enumerate(units):
        r = len(unit.root)
        put(unit.root, 0, u, 0, 0)
        t = 0
        for b, branch in enumerate(unit.branches, start=1):
            put(branch.prefix[r:], r, u, b, 0)
            p = len(branch.prefix)
            for req, tail, targets in branch.members:
                t += 1
                start = put(tail, p, u, b, t)
                scored += [(start + k, targets[k], req) for k in range(len(tail))]
    return Row(tuple(tokens), tuple(positions), tuple(unit_ids), tuple(branch_ids), tuple(parts), tuple(scored))


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
