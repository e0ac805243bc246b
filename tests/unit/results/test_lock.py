"""One driver per results folder (results/lock.py): a live holder stops the second one, a dead
holder's lock is taken over, the lock goes when its run ends."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from harness.errors import UserError
from harness.results.lock import LOCK, Holder, read_holder, run_lock


def _write(path, pid, host=None):
    path.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "started": "2026-01-01T00:00:00Z"}))


def test_lock_is_held_then_released(tmp_path):
    with run_lock(tmp_path) as me:
        assert read_holder(tmp_path / LOCK) == me and me.pid == os.getpid()
        with pytest.raises(UserError, match=f"in use by pid {os.getpid()}"):
            with run_lock(tmp_path):
                pass
    assert not (tmp_path / LOCK).exists()


def test_a_live_process_elsewhere_in_the_folder_stops_a_second_driver(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write(tmp_path / LOCK, holder.pid)
        with pytest.raises(UserError) as err:
            with run_lock(tmp_path):
                pass
        assert f"pid {holder.pid}" in str(err.value) and "\n" not in str(err.value)
        assert read_holder(tmp_path / LOCK).pid == holder.pid  # not taken, not removed
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_holders_lock_is_taken_over_with_a_line(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write(tmp_path / LOCK, dead.pid)
    with run_lock(tmp_path) as me:
        assert read_holder(tmp_path / LOCK) == me
    assert f"taking over {tmp_path / LOCK} from pid {dead.pid}" in capsys.readouterr().err


def test_another_hosts_lock_is_trusted(tmp_path):
    _write(tmp_path / LOCK, 1, host="elsewhere.invalid")
    with pytest.raises(UserError, match="on elsewhere.invalid"):
        with run_lock(tmp_path):
            pass


def test_holder_round_trips():
    me = Holder.me()
    assert Holder(**json.loads(json.dumps(me.__dict__))) == me
