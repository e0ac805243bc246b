"""`harness run`: plan -> preflight -> execute -> finalize -> analyze, each stage entered once.

Exit codes (README, "Running a sweep"): 0 every shard done and analysed; 1 finished with failed
shards (listed); 2 bad input; 3 scores written but the analysis failed (one line says why; rerun
`harness analyze RUN_DIR`); 130 interrupted (written shards stay; the same command resumes).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

from harness.config import Sweep
from harness.engine.progress import Progress
from harness.engine.state import RunState
from harness.errors import UserError, first_line
from harness.plan.preflight import preflight
from harness.plan.shards import Plan, Shard, build_plan
from harness.results.finalize import finalize, headline_table
from harness.results.manifest import ManifestRecorder, check_output_dir, failed_line
from harness.results.store import written_shards

EXIT_FAILED_SHARDS = 1
EXIT_ANALYSIS_FAILED = 3
EXIT_INTERRUPTED = 130


def run_sweep(sweep: Sweep, analyze: bool = True, stream=None) -> int:
    stream = stream or sys.stderr
    started = time.monotonic()
    run_dir = check_output_dir(sweep)
    plan = build_plan(sweep)
    preflight(plan)
    reused = written_shards(run_dir, plan.shards)
    pending = [s for s in plan.shards if s.key not in reused]
    print(f"harness: {len(plan.shards)} shards over {len(plan.model_revisions)} model revisions x "
          f"{len(plan.tasks)} tasks; reusing {len(reused)} finished shards, running {len(pending)}", file=stream)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = RunState()
    recorder = ManifestRecorder(run_dir, plan, state, reused)
    recorder.save("running")
    if not execute(plan, run_dir, pending, state, recorder, stream):
        return EXIT_INTERRUPTED
    scores = finalize(plan, run_dir, state.replicas)
    failed = recorder.failed()
    recorder.save("failed" if failed else "done", timing=_timing(state, started))
    print(headline_table(scores), file=stream)
    for entry in failed[:20]:
        print(failed_line(entry), file=stream)
    code = EXIT_FAILED_SHARDS if failed else 0
    if analyze and scores is not None and not scores.empty and not _analyze(run_dir, stream):
        code = code or EXIT_ANALYSIS_FAILED
    print(f"harness: results in {run_dir}", file=stream)
    return code


def execute(plan: Plan, run_dir: Path, pending: list[Shard], state: RunState, recorder: ManifestRecorder,
            stream) -> bool:
    """Score the pending shards on Ray; False when interrupted (the written shards stay)."""
    from harness.engine.driver import Driver

    progress = Progress(Counter(s.model_revision.key for s in pending), sum(s.n_requests for s in pending),
                        reused=len(recorder.reused), stream=stream)
    try:
        if pending:
            Driver(plan, run_dir, progress, state, recorder.shard_done).execute(pending)
            progress.close()
    except KeyboardInterrupt:
        progress.close()
        recorder.save("interrupted")
        done = sum(o.status == "done" for o in state.outcomes.values())
        print(f"harness: interrupted; {done} shards written this run stay in {run_dir}; "
              "run the same command to resume", file=stream)
        return False
    finally:
        _shutdown_ray()
    return True


def _shutdown_ray() -> None:
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def _timing(state: RunState, started: float) -> dict:
    wall = time.monotonic() - started
    phase = (state.scoring_ended or 0) - (state.scoring_started or 0)
    busy = state.busy_seconds / (state.slots * phase) if state.slots and phase > 0 else None
    return {"wall_seconds": round(wall, 3), "scoring_phase_seconds": round(phase, 3),
            "shard_seconds": round(state.busy_seconds, 3), "slots": state.slots,
            "busy_fraction": round(busy, 4) if busy is not None else None}


def _analyze(run_dir: Path, stream) -> bool:
    """Fits, plots and report after a run. Any failure is one line; the scores stay written."""
    try:
        from harness.analysis.analyze import analyze_run

        analyze_run(run_dir)
    except UserError as exc:
        print(f"harness: analysis skipped: {exc}", file=stream)
        return True  # nothing to fit (too few sizes, say) is an answer, not a failure
    except Exception as exc:  # noqa: BLE001 - the run's results must outlive a bug in the analysis
        print(f"harness: analysis failed ({first_line(exc, with_type=True)}); the scores are written; "
              f"rerun it with `harness analyze {run_dir}`", file=stream)
        return False
    print(f"harness: analysis written to {run_dir / 'report.md'}", file=stream)
    return True
