"""The IsoFLOP design of the committed ladder: each size's budgets on shared compute levels."""
from __future__ import annotations

import math

import pytest

from harness.zoo.design import IsoflopDesign, nonembedding_params
from harness.zoo.ladder import CPU_LADDER

TOKENS_PER_STEP = CPU_LADDER.batch_size * CPU_LADDER.seq_len


def _n(size: dict) -> int:
    return nonembedding_params(size["d_model"], size["n_layers"], size["d_ffn"])


@pytest.mark.parametrize("size", CPU_LADDER.sizes, ids=lambda s: s["name"])
def test_the_formula_counts_what_the_model_holds(size):
    from harness.zoo.train import SizeSpec, make_model

    model = make_model(SizeSpec(**size), CPU_LADDER.vocab_size, CPU_LADDER.seq_len, 0, seed=0)
    embedding = model.get_input_embeddings().weight.numel()
    assert _n(size) == sum(p.numel() for p in model.parameters()) - embedding


def test_every_size_meets_the_issue_s_budget_rules():
    # At least 5 budgets per size over at least 16x, the shared budget in every size, the warm-up
    # under 40% of the shortest run, and no run longer than the build's cap.
    design = CPU_LADDER.design
    for size in CPU_LADDER.sizes:
        steps = CPU_LADDER.checkpoint_steps(size)
        assert len(steps) >= 5 and steps[-1] / steps[0] >= 16, size["name"]
        assert design.shared_steps in steps and design.min_steps <= steps[0] and steps[-1] <= design.max_steps


def test_levels_shared_by_three_sizes_make_profiles():
    # Each budget sits on a compute level within rounding, and enough levels hold >= 3 sizes (a
    # parabola's worth) to give Approach 2 a frontier over more than a decade of compute.
    design, by_level = CPU_LADDER.design, {}
    for size in CPU_LADDER.sizes:
        for steps in CPU_LADDER.checkpoint_steps(size):
            if steps == design.shared_steps:
                continue
            level = math.log10(6 * _n(size) * steps * TOKENS_PER_STEP)
            nearest = min(design.levels(), key=lambda c: abs(math.log10(c) - level))
            assert abs(math.log10(nearest) - level) < 0.01  # well within analysis.isoflop's 0.05 decades
            by_level.setdefault(nearest, set()).add(size["name"])
    profiles = sorted(c for c, names in by_level.items() if len(names) >= 3)
    assert len(profiles) >= 6 and math.log10(profiles[-1] / profiles[0]) >= 1.25


def test_budgets_outside_the_range_are_dropped():
    tight = IsoflopDesign(first_log10_flops=10.0, last_log10_flops=11.0, step_log10=0.5, min_steps=300,
                          max_steps=2000, shared_steps=1000)
    # 1e10, 10^10.5, 1e11 FLOPs over 6 x 4144 x 2048: 196, 621, 1964 steps; 196 is under min_steps
    assert tight.budgets(4144, 2048) == (621, 1000, 1964)
