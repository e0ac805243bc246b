"""Submit a sweep to a Ray cluster through the Ray Jobs API, and follow it.

`harness submit sweeps/pythia.yaml --address http://127.0.0.1:8265 --follow` runs
`python -m harness run sweeps/pythia.yaml --address auto --out ~/harness/results/pythia` as a Ray
job on the cluster's head node.

How the project travels (the runtime environment):
* `working_dir` = this project's root (minus .venv, .git, results, caches): the job and every
  worker it starts run the code and the lm-eval task folders (`tasks/`) of *this* checkout,
  because Ray unpacks it, makes it the current directory and puts it on `sys.path`.
* The *dependencies* (torch with CUDA, transformers, lm-eval, Ray) come from the cluster's own
  environment, which `cluster.yaml` installs once per node (`pip install -e ~/harness`).
  `pip: ["-e ."]` cannot be combined with working_dir, and a `pip:` list of the dependencies
  would build a fresh virtual environment with a multi-GB torch on every node for every job.
* Results go to a folder on the head that outlives the job (`~/harness/results/<name>` by
  default, next to the copy `ray up` syncs), not into the job's temporary working_dir.

Token authentication: Ray's own CLI turns token mode on when it finds a token; the Python Jobs
client only does so when RAY_AUTH_MODE=token is set. `enable_client_token_auth` does the same
as the CLI for this process, so a token from `ray get-auth-token` is all a user needs.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from harness.config import REPO_ROOT
from harness.errors import UserError

PROJECT_ROOT = REPO_ROOT  # the checkout shipped to the cluster as the job's working_dir
# Never uploaded: the local virtual environment, git history, earlier results, caches.
EXCLUDES = (".venv", ".git", "results", "**/__pycache__", "*.egg-info", ".pytest_cache")
# Where results live on the head: beside the project copy cluster.yaml syncs (`~/harness`).
REMOTE_ROOT = "~/harness"


@dataclass(frozen=True)
class JobRequest:
    """Everything a submission sends: the command, and the runtime environment it runs in."""

    entrypoint: str
    runtime_env: dict[str, Any] = field(default_factory=dict)
    submission_id: str | None = None


def enable_client_token_auth() -> bool:
    """Turn on token mode for this process's Jobs client when a token is available.

    Respects an explicit RAY_AUTH_MODE. Otherwise a token in RAY_AUTH_TOKEN, in the file named by
    RAY_AUTH_TOKEN_PATH or in ~/.ray/auth_token enables it, as `ray start` and `ray job` do.
    Must run before Ray reads its configuration (that is, before the client is created).
    """
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode:
        return mode.lower() == "token"
    has_token = bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")) or (
        Path.home() / ".ray" / "auth_token").is_file()
    if has_token:
        os.environ["RAY_AUTH_MODE"] = "token"
    return has_token


def project_path(path: str | os.PathLike, what: str) -> str:
    """`path` relative to the project root, as the job will see it; an error if it would not travel."""
    full = Path(path).resolve()
    try:
        return full.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        raise UserError(
            f"{what} {str(path)!r} is outside the project folder {PROJECT_ROOT}, which is all that is "
            "uploaded to the cluster; move it under the project (e.g. sweeps/ or tasks/)"
        ) from None


def remote_out(out: str) -> str:
    """The output folder on the head, as shell text: relative folders go under REMOTE_ROOT.

    The `~` stays unquoted so that the job's shell expands it to the head's home directory.
    """
    if "://" in out or out.startswith(("/", "~")):
        return shlex.quote(out) if not out.startswith("~/") else "~/" + shlex.quote(out[2:])
    return f"{REMOTE_ROOT}/{shlex.quote(out)}"


def run_entrypoint(run_args: Sequence[str], out: str) -> str:
    """The shell command of the job: `harness run ... --address auto --out OUT`.

    `python -m harness` (not the `harness` script): the job's current directory is the uploaded
    project, so this checkout's package wins over whatever version the cluster has installed.
    """
    words = ["python", "-m", "harness", "run", *(shlex.quote(a) for a in run_args)]
    return " ".join([*words, "--address", "auto", "--out", remote_out(out)])


def runtime_env(extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """The runtime environment: this project as working_dir, plus a few environment variables."""
    env = {"TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}  # logs stream as they are written
    env.update(extra_env or {})
    return {"working_dir": str(PROJECT_ROOT), "excludes": list(EXCLUDES), "env_vars": env}


def _client(address: str):
    enable_client_token_auth()
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except AuthenticationError as exc:
        raise UserError(
            f"the Ray cluster at {address} refused the token ({str(exc).splitlines()[0]}); get the cluster's "
            "token (`ray get-auth-token` on the head) into ~/.ray/auth_token or RAY_AUTH_TOKEN"
        ) from None
    except ConnectionError:
        raise UserError(
            f"cannot reach the Ray dashboard at {address}; start the tunnel with `ray dashboard cluster.yaml` "
            "and pass --address http://127.0.0.1:8265"
        ) from None


def submit(address: str, request: JobRequest) -> str:
    """Submit the job; returns its id."""
    client = _client(address)
    return client.submit_job(entrypoint=request.entrypoint, runtime_env=request.runtime_env,
                             submission_id=request.submission_id)


def follow(address: str, job_id: str, stream: TextIO = sys.stdout) -> int:
    """Stream the job's logs until it ends; returns its exit code (0 only if it succeeded)."""
    import asyncio

    from ray.job_submission import JobStatus

    client = _client(address)

    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            stream.write(lines)
            stream.flush()

    try:
        asyncio.run(tail())
    except KeyboardInterrupt:
        print(f"harness: stopped following; job {job_id} keeps running "
              f"(`ray job stop {job_id} --address {address}` ends it)", file=sys.stderr)
        return 130
    info = client.get_job_info(job_id)
    print(f"harness: job {job_id} {info.status.value}", file=sys.stderr)
    if info.status == JobStatus.SUCCEEDED:
        return 0
    code = getattr(info, "driver_exit_code", None)
    return code if code else 1
