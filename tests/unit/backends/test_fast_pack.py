"""The fast backend's planner: HFLM's truncation, prefix groups, rows that never overflow."""

from __future__ import annotations

import random

import pytest

from harness.backends.fast.pack import Scored, batches, make_units, pack_rows, split_request


def test_split_request_follows_hflm_truncation():
    ctx, cont = list(range(10)), [100, 101, 102]
    # HFLM feeds (ctx + cont)[-(L+1):][:-1] and scores the last len(cont) positions.
    full = (ctx + cont)[-(8 + 1):]
    s = split_request(ctx, cont, max_length=8)
    assert list(s.prefix) + list(s.tail) == full[:-1]
    assert s.targets == tuple(cont) and len(s.tail) == len(cont)
    assert split_request([7], [1, 2], 8) == Scored(prefix=(), tail=(7, 1), targets=(1, 2))
    with pytest.raises(ValueError):
        split_request([], [1], 8)


def test_units_share_identical_prefixes_only():
    reqs = [split_request([1, 2, 3, 4], [5], 16), split_request([1, 2, 3, 4], [6, 7], 16),
            split_request([9, 2, 3, 4], [5], 16), split_request([8], [5, 6], 16), split_request([8], [5], 16)]
    units = make_units(reqs, capacity=64)
    sizes = sorted(len(u.members) for u in units)
    # two share "1 2 3"; "9 2 3" is alone; empty-prefix requests are never grouped
    assert sizes == [1, 1, 1, 2]
    assert [len(u.members) for u in make_units(reqs, 64, share_prefixes=False)] == [1] * 5


def test_units_share_a_common_root_between_different_prefixes():
    shots = list(range(100, 120))  # the same 20 "few-shot" tokens in front of every item
    reqs = [split_request(shots + [doc, doc + 1], [7, 8], 64) for doc in range(5)]
    reqs.append(split_request(list(range(200, 230)), [7], 64))  # shares nothing
    units = make_units(reqs, capacity=64, min_root=16)
    shared = max(units, key=lambda u: len(u.branches))
    assert shared.root == tuple(shots) and len(shared.branches) == 5
    assert shared.length == 20 + 5 * (1 + 2)  # root once, then each item's body (1) and tail (2)
    assert len(make_units(reqs, capacity=64, min_root=21)) == 6
    assert all(u.length <= 30 or len(u.branches) == 1 for u in make_units(reqs, capacity=30, min_root=16))


def test_rows_hold_every_target_once_and_respect_capacity():
    rng = random.Random(0)
    reqs = []
    for doc in range(30):
        ctx = [1] * 18 * (doc % 2) + [rng.randrange(50) for _ in range(rng.randint(1, 40))]
        for _ in range(rng.randint(1, 4)):
            reqs.append(split_request(ctx, [rng.randrange(50) for _ in range(rng.randint(1, 6))], 32))
    units = make_units(reqs, capacity=64)
    assert any(len(u.branches) > 1 for u in units)
    rows = pack_rows(units, capacity=48)
    longest = max(u.length for u in units)
    assert all(len(r.tokens) <= max(48, longest) for r in rows)
    seen = sorted((req, pos_target) for r in rows for (_, pos_target, req) in r.scored)
    want = sorted((i, t) for i, s in enumerate(reqs) for t in s.targets)
    assert seen == want
    for r in rows:  # each scored position's own token is the tail input that predicts the target
        for pos, target, req in r.scored:
            s = reqs[req]
            k = s.targets.index(target) if s.targets.count(target) == 1 else None
            if k is not None:
                assert r.tokens[pos] == s.tail[k] and r.positions[pos] == len(s.prefix) + k
    groups = batches(rows, max_tokens=150)
    assert sum(len(b) for b in groups) == len(rows)
    assert all(len(b) == 1 or len(b) * len(b[0].tokens) <= 150 for b in groups)
    assert all(len(r.tokens) <= len(b[0].tokens) for b in groups for r in b)
