"""Benchmark of the scheduling policy: `sweeps/pythia.yaml` on 64 GPUs of 80 GB, 10,000 shards.

Goal (issue 4): makespan <= 1.10 x lower bound, driver overhead <= 1 ms per shard.
Runs the real policy (harness.scheduling.placement + harness.scheduling.policy) in the event-driven simulator,
for several workload seeds, in two settings:
* the issue's model: a shard takes cost / throughput and replicas start instantly;
* with weight loading: each replica first loads for 10 s + weights / 2 GB/s, which no schedule
  avoids, so it is also compared with the load-aware lower bound.

Usage: .venv/bin/python bench/bench_placement.py [--out bench/results/placement.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.config import load_sweep  # noqa: E402
from harness.scheduling.simulator import SimulationParams, format_simulation, simulate_sweep  # noqa: E402

GPUS, GPU_MEM_GB, SHARDS, SEEDS = 64, 80.0, 10_000, range(5)
SETTINGS = {
    "no loads (issue's model)": SimulationParams(load_fixed_s=0.0, load_bytes_per_s=float("inf")),
    "with weight loading": SimulationParams(),
}


def run() -> tuple[list[str], bool]:
    sweep = load_sweep(ROOT / "sweeps" / "pythia.yaml")
    lines = [
        "| setting | seed | shards | makespan_s | lower_bound_s | ratio | lower_bound_with_loads_s | ratio_with_loads | replicas started | overhead us/shard |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    ok, example = True, {}
    for name, params in SETTINGS.items():
        ratios, overheads = [], []
        for seed in SEEDS:
            r = simulate_sweep(sweep, GPUS, GPU_MEM_GB, shards=SHARDS, seed=seed, params=params)
            example.setdefault(name, r)
            ratios.append(r.ratio)
            overheads.append(r.driver_overhead_ms_per_shard)
            lines.append(
                f"| {name} | {seed} | {r.shards} | {r.makespan_s:.1f} | {r.lower_bound_s:.1f} | {r.ratio:.3f} | "
                f"{r.lower_bound_with_loads_s:.1f} | {r.ratio_with_loads:.3f} | {r.replicas_started} | "
                f"{1e3 * r.driver_overhead_ms_per_shard:.1f} |")
            ok &= r.driver_overhead_ms_per_shard <= 1.0
            if name.startswith("no loads"):
                ok &= r.ratio <= 1.10
        lines.append(f"| {name} | median | | | | {statistics.median(ratios):.3f} | | | | "
                     f"{1e3 * statistics.median(overheads):.1f} |")
    for name, r in example.items():
        lines += ["", f"Seed 0, {name}:", "", "```", format_simulation(r), "```"]
    return lines, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "placement.md")
    args = parser.parse_args()
    started = time.perf_counter()
    table, ok = run()
    elapsed = time.perf_counter() - started
    header = [
        "# Placement and scheduling: simulated Pythia sweep on 64 GPUs",
        "",
        "Command: `.venv/bin/python bench/bench_placement.py` "
        f"(also `harness plan sweeps/pythia.yaml --simulate --gpus {GPUS} --gpu-mem-gb {GPU_MEM_GB:g}`).",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"whole benchmark {elapsed:.1f} s.",
        "",
        f"Workload: sweeps/pythia.yaml (8 sizes x 4 revisions, 4 tasks), a synthetic workload of about "
        f"{SHARDS:,} shards (task sizes of the real lm-eval test sets, log-normal document lengths), "
        f"{GPUS} GPUs of {GPU_MEM_GB:g} GB on nodes of 8, 100 TFLOP/s effective per GPU.",
        "`lower_bound_s` = max(total work / capacity, longest shard); `lower_bound_with_loads_s` also",
        "charges every replica its weight loading (see harness/scheduling/placement.py, `balanced_finish_s`).",
        "Driver overhead = measured wall time of the policy calls (queue, placement, choose_model) / shards.",
        "",
        f"Goal: makespan <= 1.10 x lower bound and overhead <= 1 ms per shard: {'MET' if ok else 'NOT MET'} "
        "(ratio checked in the issue's model, overhead in both).",
        "",
        "Reading: with instant replicas the policy stays within 1% of the bound. With weight loading",
        "(10 s + weights at 2 GB/s per replica; 22 s for the 12B) this sweep is small for 64 GPUs",
        "(43 s of compute per GPU), so loading alone puts any schedule >= 1.4x the plain bound;",
        "the policy stays within ~10% of the load-aware bound, and the remaining gap is whole-GPU",
        "replicas of the 12B (8 or 9 per revision against a share of 8.4).",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header + table) + "\n")
    print("\n".join(header + table))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
