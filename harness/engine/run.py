"""`harness run`: plan -> preflight -> execute -> finalize -> analyze, each stage entered once.

Exit codes (README, "Running a sweep"): 0 every shard done and analysed; 1 finished with failed
shards (listed); 2 bad input; 3 scores written but the analysis failed (one line says why; rerun
`harness analyze RUN_DIR`); 4 an unexpected error (disk full, a bug: one line, the traceback in
RUN_DIR/error.log); 130 interrupted by Ctrl-C, 143 by SIGTERM (written shards stay; the same
command resumes). `harness run` calls `run_command`: `run_sweep` plus what makes the 4 and the 143
(and Ctrl-C outside scoring an exit, not a traceback).
"""

from __future__ import annotations

import errno
import sys
import time
import traceback
from collections import Counter
from dataclasses import replace
from pathlib import Path

from harness.config import Sweep
from harness.engine.feed import ShardFeed
from harness.engine.progress import Progress
from harness.engine.signals import SigtermAsInterrupt, Terminated
from harness.engine.state import RunState
from harness.errors import UserError, first_line
from harness.plan.preflight import preflight
from harness.plan.shards import Plan, Shard, plan_models
from harness.results.finalize import finalize, headline_table
from harness.results.lock import run_lock
from harness.results.mirror import working_folder
from harness.results.remote import is_remote
from harness.results.manifest import (MANIFEST, ManifestRecorder, check_output_dir, check_same_models, failed_line,
                                      read_manifest, write_manifest)
from harness.files import remove_stale_temps
from harness.results.store import RETIRED, remove_empty_folder, retire_unplanned, write_text_atomic

EXIT_FAILED_SHARDS = 1
EXIT_ANALYSIS_FAILED = 3
EXIT_INTERNAL_ERROR = 4
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM ended


def run_sweep(sweep: Sweep, analyze: bool = True, stream=None) -> int:
    stream = stream or sys.stderr
    started = time.monotonic()
    run_dir = check_output_dir(sweep)
    revisions, finals, fingerprints = plan_models(sweep)  # model errors first, before any task is built
    plan = Plan(sweep, {}, revisions, [], fingerprints)  # its tasks and shards arrive from the feed
    preflight(plan)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with run_lock(run_dir, stream):  # a second driver on this folder stops here, naming this one
            return _write_run(plan, finals, run_dir, analyze, stream, started)
    except UserError:
        if created:
            remove_empty_folder(run_dir)  # bad input (a task that does not build) leaves no folder behind
        raise


def _write_run(plan: Plan, finals: set[str], run_dir: Path, analyze: bool, stream, started: float) -> int:
    """Everything that reads and writes RUN_DIR's shards, under its lock: score the pending ones
    as their tasks are built, finalize, analyze."""
    check_same_models(run_dir, plan)  # under the lock: the manifest it reads is not being rewritten
    _say_unresolved_commits(plan, stream)
    remove_stale_temps(run_dir)  # left by a process killed mid-write; a live writer's stay
    feed = ShardFeed(plan, finals, run_dir, stream).start()
    try:
        pending = feed.first()  # a task that does not build fails here, before the manifest is written
    except BaseException:
        feed.stop()
        raise
    state = RunState()
    recorder = ManifestRecorder(run_dir, plan, state, feed.reused)
    recorder.save("running")
    stopped = execute(plan, run_dir, pending, feed, state, recorder, stream)
    if stopped is not None:
        return stopped
    retired = retire_unplanned(run_dir, plan.shards)  # the plan is whole now
    if retired:
        print(f"harness: {retired} shard file(s) of an earlier sweep moved to {run_dir / RETIRED} "
              "(kept: a sweep that plans them again reuses them)", file=stream)
    scores = finalize(plan, run_dir, state.replicas)
    failed = recorder.failed()
    recorder.save("failed" if failed else "done", timing=_timing(state, started, feed))
    print(headline_table(scores), file=stream)
    for entry in failed[:20]:
        print(failed_line(entry), file=stream)
    code = EXIT_FAILED_SHARDS if failed else 0
    if analyze and scores is not None and not scores.empty and not _analyze(run_dir, stream):
        code = code or EXIT_ANALYSIS_FAILED
    print(f"harness: results in {run_dir}", file=stream)
    return code


def _say_unresolved_commits(plan: Plan, stream) -> None:
    unresolved = sorted({f"{m.checkpoint.source}@{m.checkpoint.revision or 'main'}" for m in plan.model_revisions
                         if not m.checkpoint.is_local and m.checkpoint.commit is None})
    if unresolved:
        print(f"harness: the hub gave no commit for {', '.join(unresolved[:3])}{' ...' if len(unresolved) > 3 else ''} "
              "(offline, or not on the hub); their shards are keyed by the revision name only", file=stream)


def execute(plan: Plan, run_dir: Path, pending: list[Shard], feed: ShardFeed, state: RunState,
            recorder: ManifestRecorder, stream) -> int | None:
    """Score the pending shards on Ray, and those of the tasks the feed builds meanwhile; None when
    done, the exit code when stopped by Ctrl-C or SIGTERM (the written shards stay)."""
    from harness.engine.driver import Driver

    progress = Progress(Counter(), 0, stream=stream, requests_per_model=Counter())
    try:
        if pending:
            progress.add(pending)
            Driver(plan, run_dir, progress, state, recorder.shard_done, feed=feed).execute(pending)
            progress.close()
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM as `Terminated`
        feed.stop()
        progress.close()
        recorder.save("interrupted")
        done = sum(o.status == "done" for o in state.outcomes.values())
        print(f"harness: {_stopped_by(stop)}; {done} shards written this run stay in {run_dir}; "
              "run the same command to resume", file=stream)
        return _stop_code(stop)
    except BaseException:
        feed.stop()
        progress.close()  # ends a terminal's progress line, so that the error's line stands alone
        raise
    finally:
        _shutdown_ray()
    return None


def _shutdown_ray() -> None:
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def _timing(state: RunState, started: float, feed: ShardFeed) -> dict:
    wall = time.monotonic() - started
    phase = (state.scoring_ended or 0) - (state.scoring_started or 0)
    busy = state.busy_seconds / (state.slots * phase) if state.slots and phase > 0 else None
    return {"wall_seconds": round(wall, 3), "scoring_phase_seconds": round(phase, 3),
            "shard_seconds": round(state.busy_seconds, 3), "slots": state.slots,
            "busy_fraction": round(busy, 4) if busy is not None else None,
            "first_shard_seconds": round(feed.first_shard_at - started, 3) if feed.first_shard_at else None}


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


# -- how a run ends when it does not finish: SIGTERM, Ctrl-C outside scoring, an unexpected error --

def _stopped_by(stop: BaseException) -> str:
    return "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"


def _stop_code(stop: BaseException) -> int:
    """By the exception, not by which handler saw the signal: one SIGTERM that arrives while
    ray.init runs meets Ray's handler, not ours, and is still a `Terminated` (engine.cluster)."""
    return EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED


def run_command(sweep: Sweep, analyze: bool = True, stream=None) -> int:
    """`harness run`: `run_sweep` in the driver's main thread, with SIGTERM stopping it as Ctrl-C
    does (exit 143) and an unexpected error ending in one line, RUN_DIR/error.log and exit 4 (a
    raw traceback and exit 1 read as "finished with failed shards")."""
    stream = stream or sys.stderr
    with SigtermAsInterrupt():  # before the bucket's pull: a SIGTERM then must end in its last push too
        try:
            if not is_remote(sweep.output or ""):
                return _run_command(sweep, analyze, stream)
            with working_folder(sweep.output, stream) as local:
                return _run_command(replace(sweep, output=str(local), location=sweep.output), analyze, stream)
        except KeyboardInterrupt as stop:  # while pulling the bucket: nothing of this run is written yet
            print(f"harness: {_stopped_by(stop)}; run the same command to resume", file=stream)
            return _stop_code(stop)


def _run_command(sweep: Sweep, analyze: bool, stream) -> int:
    run_dir = sweep.output_dir
    before = _manifest_stamp(run_dir)
    try:
        return run_sweep(sweep, analyze, stream)
    except UserError:
        raise  # bad input: the CLI's one line and exit 2
    except KeyboardInterrupt as stop:  # outside scoring (planning, finalize), which handles its own
        _mark_manifest(run_dir, before, "interrupted")
        print(f"harness: {_stopped_by(stop)}; run the same command to resume", file=stream)
        return _stop_code(stop)
    except Exception as exc:  # noqa: BLE001 - the top of the run: every other failure ends here
        return internal_error(exc, run_dir, before, stream)


def internal_error(exc: Exception, run_dir: Path, before: tuple | None, stream) -> int:
    """One line on `stream`, the traceback in RUN_DIR/error.log (on `stream` when even that cannot
    be written), the reason in the manifest this run wrote; returns EXIT_INTERNAL_ERROR."""
    log = run_dir / "error.log"
    try:
        write_text_atomic("".join(traceback.format_exception(exc)), log)
        where = f"traceback in {log}"
    except OSError as log_error:
        traceback.print_exception(exc, file=stream)
        where = f"traceback above ({log} not written: {first_line(log_error)})"
    if _disk_full(exc):
        reason = f"disk full writing {exc.filename or run_dir}"
        line = f"harness: error: {reason}; free space and run the same command to resume; {where}"
    else:
        reason = first_line(exc, with_type=True)
        line = f"harness: internal error: {reason}; {where}"
    _mark_manifest(run_dir, before, "error", error=reason)
    print(line, file=stream)
    return EXIT_INTERNAL_ERROR


def _disk_full(exc: Exception) -> bool:
    # pyarrow raises an OSError with errno only when its status kept one; else the message says it.
    return isinstance(exc, OSError) and (exc.errno == errno.ENOSPC or "No space left on device" in str(exc))


def _manifest_stamp(run_dir: Path) -> tuple | None:
    """What identifies the manifest file now (an atomic rewrite changes it), None if there is none."""
    try:
        stat = (run_dir / MANIFEST).stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _mark_manifest(run_dir: Path, before: tuple | None, status: str, **extra) -> None:
    """Set the status of the manifest this run wrote. One the run never rewrote (it stopped while
    planning) describes an earlier run correctly and stays as it is."""
    if _manifest_stamp(run_dir) in (None, before) or (manifest := read_manifest(run_dir)) is None:
        return
    manifest.update(status=status, **extra)
    try:
        write_manifest(run_dir, manifest)
    except OSError:
        pass  # a full disk, say: the one line and error.log still tell what happened
