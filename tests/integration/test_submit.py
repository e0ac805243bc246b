"""`harness submit`: the job it builds, and a real submission to a local head with token auth."""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness.cli import submit as cli_submit
from harness.errors import UserError
from harness.engine.submit import (
    EXCLUDES, PROJECT_ROOT, enable_client_token_auth, project_path, remote_out, runtime_env,
)

BIN = Path(sys.executable).parent


def _submit_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness")
    cli_submit.register(parser.add_subparsers(dest="verb"))
    return parser


def _entrypoint(argv: list[str]) -> str:
    """The job command `harness submit ARGV` would send (built as cmd_submit builds it)."""
    from harness.cli import sweep_from_args
    from harness.engine.submit import run_entrypoint

    args = _submit_parser().parse_args(["submit", *argv])
    sweep = sweep_from_args(argparse.Namespace(**{**vars(args), "address": None, "out": None}))
    run_args = ([project_path(args.sweep, "sweep")] if args.sweep else []) + cli_submit._passed_flags(args)
    return run_entrypoint(run_args, args.out or sweep.output or f"results/{sweep.name}")


def test_job_command_is_a_harness_run_that_the_cli_accepts():
    from harness.cli import build_parser

    sweep = str(PROJECT_ROOT / "sweeps" / "pythia.yaml")  # absolute locally, relative in the job
    command = _entrypoint([sweep, "--address", "http://127.0.0.1:8265", "--limit", "3", "--tasks", "piqa",
                           "--no-analyze", "--batch-size", "8"])
    words = shlex.split(command)
    assert words[:4] == ["python", "-m", "harness", "run"]
    run = build_parser().parse_args(words[3:])
    assert run.sweep == "sweeps/pythia.yaml"
    assert run.address == "auto"  # inside the job: the cluster it runs on
    assert (run.limit, run.tasks, run.no_analyze, run.batch_size) == (3, "piqa", True, 8)
    assert run.out == "~/harness/results/pythia"  # the sweep's output, on the head, outside the job's temp dir


def test_output_folder_on_the_head():
    assert remote_out("results/x") == "~/harness/results/x"
    assert remote_out("/data/runs/x") == "/data/runs/x"
    assert remote_out("s3://bucket/runs/x") == "s3://bucket/runs/x"
    assert remote_out("~/runs/x y") == "~/'runs/x y'"
    # The tilde stays unquoted so that the job's shell expands it; the rest is quoted.
    assert shlex.split(remote_out("results/a b")) == ["~/harness/results/a b"]


def test_files_outside_the_project_do_not_travel(tmp_path):
    outside = tmp_path / "sweep.yaml"
    outside.write_text("models: [m]\ntasks: [t]\n")
    with pytest.raises(UserError, match="outside the project"):
        project_path(outside, "sweep file")
    assert project_path(PROJECT_ROOT / "tasks", "folder") == "tasks"


def test_runtime_env_ships_the_project_without_local_state():
    env = runtime_env()
    assert Path(env["working_dir"]) == PROJECT_ROOT
    assert {".venv", ".git", "results"} <= set(env["excludes"]) == set(EXCLUDES)
    assert "pip" not in env and "conda" not in env  # dependencies come from the cluster (cluster.yaml)


def test_client_token_mode(monkeypatch, tmp_path):
    token = tmp_path / "token"
    token.write_text("x" * 32)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    assert enable_client_token_auth() is True
    assert os.environ["RAY_AUTH_MODE"] == "token"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # an explicit choice is respected
    assert enable_client_token_auth() is False
    assert os.environ["RAY_AUTH_MODE"] == "disabled"


# ------------------------------------------------------------------ a real head on 127.0.0.1


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _wait_for_dashboard(port: int, head: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited with {head.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/version", timeout=1)
            return
        except urllib.error.HTTPError:
            return  # 401: up, and asking for the token
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("the Ray dashboard did not come up")


def _stop_session(head: subprocess.Popen) -> None:
    """Stop the head we started and everything it spawned, by process id.

    Not `ray stop`: that kills every Ray process of the machine, other users' clusters included.
    `ray start --block` shuts its own services down on SIGTERM; stragglers of our session follow.
    """
    import psutil

    sid = os.getsid(head.pid)
    head.send_signal(signal.SIGTERM)
    try:
        head.wait(timeout=20)
    except subprocess.TimeoutExpired:
        head.kill()
    mine = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid != os.getpid() and os.getsid(proc.pid) == sid:
                mine.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    for proc in mine:
        proc.terminate()
    _, alive = psutil.wait_procs(mine, timeout=5)
    for proc in alive:
        proc.kill()


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head on 127.0.0.1 with token authentication, in its own temp dir and session."""
    tmp = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # short: Ray's socket paths have a length limit
    token = Path(tmp) / "token"
    token.write_text(secrets.token_hex(32))
    ports = _free_ports(8)
    env = {**os.environ, "RAY_TMPDIR": tmp, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    flags = ["--port", "--dashboard-port", "--ray-client-server-port", "--dashboard-agent-listen-port",
             "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port",
             "--node-manager-port"]
    command = [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
               "--dashboard-host", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
    for flag, port in zip(flags, ports, strict=True):
        command += [flag, str(port)]
    log = open(Path(tmp) / "head.log", "w")
    head = subprocess.Popen(command, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_dashboard(ports[1], head)
        yield {"address": f"http://127.0.0.1:{ports[1]}", "token": token}
    finally:
        _stop_session(head)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _harness(args: list[str], token_env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(token_env, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run([sys.executable, "-m", "harness", *args], env=env, cwd=tempfile.gettempdir(),
                          capture_output=True, text=True, timeout=120)


PROBE = ("import sys, harness; from harness.config import REPO_ROOT; "
         "print('PROJECT', REPO_ROOT, (REPO_ROOT / 'tasks').is_dir(), (REPO_ROOT / '.venv').exists())")


@pytest.mark.ray
@pytest.mark.slow
def test_submit_follow_and_exit_codes(ray_head):
    token = {"RAY_AUTH_TOKEN_PATH": str(ray_head["token"])}  # no RAY_AUTH_MODE: submit turns it on
    ok = _harness(["submit", "--address", ray_head["address"], "--follow", "--command", f'python -c "{PROBE}"'],
                  token)
    assert ok.returncode == 0, ok.stderr[-2000:]
    job_id = ok.stdout.splitlines()[0]
    assert job_id.startswith("raysubmit_")
    # The job ran this project's code from the uploaded copy, tasks included, the local venv not.
    line = next(l for l in ok.stdout.splitlines() if l.startswith("PROJECT "))
    _, root, has_tasks, has_venv = line.split()
    assert Path(root) != PROJECT_ROOT and "working_dir" in root
    assert (has_tasks, has_venv) == ("True", "False")
    assert f"job {job_id} SUCCEEDED" in ok.stderr

    failed = _harness(["submit", "--address", ray_head["address"], "--follow", "--command", "exit 3"], token)
    assert failed.returncode == 3
    assert "FAILED" in failed.stderr


@pytest.mark.ray
@pytest.mark.slow
def test_submit_with_a_wrong_token_is_refused(ray_head):
    refused = _harness(["submit", "--address", ray_head["address"], "--command", "true"],
                       {"RAY_AUTH_TOKEN": "0" * 64})
    assert refused.returncode == 2
    assert "token" in refused.stderr and "Traceback" not in refused.stderr
