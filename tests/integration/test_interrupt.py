"""Ctrl-C and SIGTERM stop a run cleanly: written shards stay, the manifest says interrupted, the
same command resumes and finishes with the results an undisturbed run gives.

SIGTERM is what `ray job stop`, Slurm, Kubernetes and systemd send; without a handler of ours Ray's
C++ handler aborted the driver (exit 134, a stack dump) and the manifest said `running` forever."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.tiny import TASK_NAMES

pytestmark = [pytest.mark.ray, pytest.mark.slow]


# Loaded by every Python process of the run (driver and Ray workers inherit PYTHONPATH): each shard
# takes at least SHARD_DELAY_S more, so the signal always lands mid-run. Without it the 72 tiny
# shards finished within a second of the third one, sometimes before the signal arrived.
SHARD_DELAY_S = 0.25
SLOW_SHARDS = f"""
import importlib.util, sys, time

class _SlowShards:
    def find_spec(self, name, path=None, target=None):
        if name != "harness.engine.worker":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            run = module.ShardWorker.run

            def slow_score(self, instances):
                time.sleep({SHARD_DELAY_S})
                return run(self, instances)

            module.ShardWorker.run = slow_score

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _SlowShards())
"""


# Signs of a crash rather than a clean stop: a Python traceback, Ray's C++ handler's stack dump
# ("*** SIGTERM received at time=..."), an abort.
CRASH_SIGNS = ("Traceback", "SIGTERM received", "Aborted", "core dumped")


def _argv_and_env(tiny_world, tmp_path) -> tuple[list[str], dict]:
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "harness", "run", "--models", f"{tiny_world['small']},{tiny_world['large']}",
            "--tasks", ",".join(TASK_NAMES), "--include-path", str(tiny_world["tasks"]), "--out", str(out),
            "--docs-per-shard", "1", "--workers", "1", "--device", "cpu", "--no-analyze"]
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SLOW_SHARDS)
    path = os.pathsep.join(p for p in (str(hooks), os.environ.get("PYTHONPATH")) if p)
    return argv, dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", PYTHONPATH=path)


@pytest.mark.parametrize("signum, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_a_signal_keeps_written_shards_and_the_run_resumes(tiny_world, tmp_path, signum, exit_code):
    argv, env = _argv_and_env(tiny_world, tmp_path)
    out = tmp_path / "run"
    # A shell starts background jobs with SIGINT ignored and Python then installs no Ctrl-C handler:
    # give the run the disposition of a program started at a terminal, whatever started pytest.
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and len(list(out.rglob("requests/**/*.parquet"))) < 3:
        time.sleep(0.2)
    written_before = len(list(out.rglob("requests/**/*.parquet")))
    assert written_before >= 3, "no shard finished in time"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == exit_code, err[-2000:]
    assert not [sign for sign in CRASH_SIGNS if sign in err], err[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    kept = len(list(out.rglob("requests/**/*.parquet")))
    assert kept >= written_before and kept < 2 * 3 * 12
    assert not list(out.rglob(".tmp-*")), "a partial file was left behind"

    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"reusing {kept} finished shards" in done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "done"
    scores = pd.read_parquet(out / "scores.parquet")
    assert set(scores.model) == {"tiny-s", "tiny-l"} and scores.value.notna().all()
