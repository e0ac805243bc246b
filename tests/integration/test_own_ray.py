"""A local run starts its own Ray even when another Ray instance runs on the machine.

Someone ran `ray start --head` (RAY_ADDRESS set in their shell), or another test suite holds an
instance: `harness run` without `--address` must not join it (Ray then refuses `num_cpus` with a
ValueError) but start, use and shut down an instance of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

RAY = Path(sys.executable).parent / "ray"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_head(temp_dir: Path, port: int, env: dict) -> subprocess.Popen:
    """A head on loopback in its own temp dir and session. `--block` keeps `ray start` alive as
    the parent of the head's processes, so that stopping it stops exactly this instance
    (`ray stop` would stop every Ray instance of this user, other suites' included)."""
    log = (temp_dir / "head.log").open("w")
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--port", str(port), "--num-cpus", "1",
         "--include-dashboard=false", "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1",
         "--dashboard-port", str(_free_port()), "--temp-dir", str(temp_dir), "--disable-usage-stats"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while "block forever" not in (temp_dir / "head.log").read_text():
        assert head.poll() is None and time.monotonic() < deadline, (temp_dir / "head.log").read_text()[-2000:]
        time.sleep(0.2)
    return head


def _stop_head(head: subprocess.Popen) -> None:
    """SIGTERM to `ray start --block` drains and stops its processes (~2 s here); whatever of its
    session is left after 30 s is killed by process group, which is ours alone."""
    head.send_signal(signal.SIGTERM)
    try:
        head.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(head.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    head.wait(timeout=10)


def test_run_without_address_starts_its_own_ray_beside_another_instance(tiny_world, tmp_path):
    # A short temp dir: Ray's unix socket paths must stay under ~107 characters.
    temp_dir = Path(tempfile.mkdtemp(prefix="rayhead", dir="/tmp"))
    port = _free_port()
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    head = _start_head(temp_dir, port, env)
    try:
        out = tmp_path / "run"
        user_env = dict(env, RAY_ADDRESS=f"127.0.0.1:{port}")  # as `ray start --head` tells users to set
        done = subprocess.run(
            [sys.executable, "-m", "harness", "run", "--models", str(tiny_world["small"]), "--tasks", "tiny_mc",
             "--include-path", str(tiny_world["tasks"]), "--out", str(out), "--limit", "4", "--workers", "1",
             "--device", "cpu", "--no-analyze"],
            env=user_env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert json.loads((out / "manifest.json").read_text())["status"] == "done"
        # The user's instance is untouched: the run shut down only the instance it started.
        assert head.poll() is None, "the run stopped the instance it should have left alone"
    finally:
        _stop_head(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
