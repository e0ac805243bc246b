"""An unexpected error in `harness run` (a bug, a full disk) is one line, RUN_DIR/error.log and
exit 4, with the manifest saying `error`: not a raw traceback and exit 1, which the README gives to
"finished with failed shards". No Ray starts: scoring is replaced by a stub."""

from __future__ import annotations

import errno
import json
import re

import pytest

from harness.cli import main
from harness.cli import run as run_cli
from harness.engine import run as run_module


def _argv(world, out) -> list[str]:
    return ["run", "--models", str(world["small"]), "--tasks", "tiny_mc", "--include-path", str(world["tasks"]),
            "--out", str(out), "--limit", "1", "--device", "cpu", "--no-analyze"]


def _fail_in_finalize(monkeypatch, error: Exception) -> None:
    """Scoring "succeeds" without Ray; writing the samples and scores then raises `error`."""
    monkeypatch.setattr(run_module, "execute", lambda *args: None)  # None: every shard done

    def finalize(*args, **kwargs):
        raise error

    monkeypatch.setattr(run_module, "finalize", finalize)


@pytest.mark.parametrize("error, line", [
    (RuntimeError("shard table has no rows\nsecond line nobody needs"),
     "harness: internal error: RuntimeError: shard table has no rows; traceback in {log}"),
    (OSError(errno.ENOSPC, "No space left on device", "/data/run/scores.parquet"),
     "harness: error: disk full writing /data/run/scores.parquet; free space and run the same command "
     "to resume; traceback in {log}"),
], ids=["bug", "disk-full"])
def test_an_unexpected_error_is_one_line_an_error_log_and_exit_4(tiny_world, tmp_path, monkeypatch, capsys,
                                                                  error, line):
    out = tmp_path / "run"
    _fail_in_finalize(monkeypatch, error)
    assert main(_argv(tiny_world, out)) == 4
    err = capsys.readouterr().err
    log = out / "error.log"
    assert err.strip().splitlines()[-1] == line.format(log=log)
    assert "Traceback" not in err
    text = log.read_text()
    assert text.startswith("Traceback (most recent call last):") and "in finalize" in text
    assert f"\n{type(error).__name__}: " in text  # the whole exception, every line of it
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "error"
    assert manifest["error"] == line.split("error: ", 1)[1].split(";")[0]
    assert not list(out.glob(".tmp-*"))


def test_an_error_before_the_run_writes_its_manifest_leaves_the_earlier_one(tiny_world, tmp_path, monkeypatch,
                                                                            capsys):
    """The manifest of an earlier, finished run describes that run: an error while planning the
    next one must not mark it."""
    out = tmp_path / "run"
    out.mkdir()
    earlier = {"status": "done", "shards": []}
    (out / "manifest.json").write_text(json.dumps(earlier))

    def plan_models(sweep):
        raise ValueError("planner bug")

    monkeypatch.setattr(run_module, "plan_models", plan_models)
    assert main(_argv(tiny_world, out)) == 4
    assert capsys.readouterr().err.strip().endswith(f"ValueError: planner bug; traceback in {out / 'error.log'}")
    assert json.loads((out / "manifest.json").read_text()) == earlier
    assert "planner bug" in (out / "error.log").read_text()


def test_the_help_gives_the_engines_exit_codes():
    listed = {int(code) for code in re.findall(r"(?m)(?:^  |; )(\d+)\s", run_cli.EXIT_CODES)}
    engine = {0, 2, run_module.EXIT_FAILED_SHARDS, run_module.EXIT_ANALYSIS_FAILED, run_module.EXIT_INTERNAL_ERROR,
              run_module.EXIT_INTERRUPTED, run_module.EXIT_TERMINATED}
    assert listed == engine == {0, 1, 2, 3, 4, 130, 143}


def test_a_second_driver_on_a_folder_in_use_exits_2_naming_the_holder(tiny_world, tmp_path, monkeypatch, capsys):
    """While a live driver holds RUN_DIR/.lock, `harness run` into the same folder stops before it
    reads or writes any shard: one line naming the holder, exit 2, the holder's lock untouched."""
    import socket
    import subprocess
    import sys

    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = out / ".lock"
        lock.write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "started": "now"}))
        monkeypatch.setattr(run_module, "execute", lambda *args: pytest.fail("a second driver scored shards"))
        assert main(_argv(tiny_world, out)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"harness: error: {out} is in use by pid {holder.pid}")
        assert json.loads(lock.read_text())["pid"] == holder.pid and not (out / "manifest.json").exists()
    finally:
        holder.kill()
        holder.wait()
