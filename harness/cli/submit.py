"""`harness submit [SWEEP.yaml] --address http://HEAD:8265 [--follow] [run flags]`.

The run flags are those of `harness run` (they reach the job unchanged, except `--address`,
which here names the cluster's Jobs API, and `--out`, which names a folder on the head).
"""

from __future__ import annotations

import argparse
import os
import sys

# Flags of `harness run` that `submit` handles itself rather than passing through.
_NOT_PASSED = {"sweep", "address", "out", "help"}


def _run_flags() -> list[argparse.Action]:
    """The optional flags `harness run` accepts (learned from the CLI, so they never drift)."""
    from harness.cli.common import add_sweep_arguments

    reference = argparse.ArgumentParser(add_help=False)
    add_sweep_arguments(reference)
    reference.add_argument("--no-analyze", action="store_true")
    return [a for a in reference._actions if a.option_strings and a.dest not in _NOT_PASSED]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "submit", help="run a sweep on a Ray cluster through the Ray Jobs API",
        description="Submit `harness run` as a Ray job. The project folder travels as the job's "
                    "working_dir; results are written on the head under ~/harness/<--out>.")
    parser.add_argument("sweep", nargs="?", help="sweep YAML inside this project (default: sweeps/default.yaml)")
    parser.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                        help="the cluster's dashboard / Jobs API, e.g. http://127.0.0.1:8265 through "
                             "`ray dashboard cluster.yaml` (default: $RAY_ADDRESS)")
    parser.add_argument("--follow", action="store_true", help="stream the job's logs; exit with its exit code")
    parser.add_argument("--out", help="output folder on the head; relative folders go under ~/harness "
                                      "(default: results/<sweep name>)")
    parser.add_argument("--submission-id", help="job id to use (default: Ray's)")
    # Tests and smoke checks: run this shell command as the job instead of `harness run`.
    parser.add_argument("--command", help=argparse.SUPPRESS)
    for action in _run_flags():
        kwargs = {"dest": action.dest, "help": action.help}
        if isinstance(action, argparse._StoreTrueAction):
            kwargs["action"] = "store_true"
        else:
            kwargs.update(type=action.type, choices=action.choices)
        parser.add_argument(*action.option_strings, **kwargs)
    parser.set_defaults(func=cmd_submit)


def _passed_flags(args: argparse.Namespace) -> list[str]:
    """Rebuild the run flags the user gave, as command-line words for the job."""
    from harness.engine.submit import project_path

    words = []
    for action in _run_flags():
        value = getattr(args, action.dest, None)
        if value is None or value is False:
            continue
        flag = action.option_strings[-1]
        if action.dest == "include_path":
            value = ",".join(project_path(p, "--include-path folder") for p in str(value).split(",") if p)
        words += [flag] if value is True else [flag, str(value)]
    return words


# Where a bucket is and which region: travels with the job when --out names a bucket. Credentials
# never do (a job's environment is shown by the dashboard): the cluster's nodes bring their own.
_BUCKET_SETTINGS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION")


def _bucket_settings(out: str | None) -> dict[str, str]:
    from harness.results.remote import is_remote

    return {k: os.environ[k] for k in _BUCKET_SETTINGS if k in os.environ} if out and is_remote(out) else {}


def cmd_submit(args: argparse.Namespace) -> int:
    from harness.errors import UserError
    from harness.engine.submit import JobRequest, follow, project_path, run_entrypoint, runtime_env, submit

    if not args.address:
        raise UserError("submit needs the cluster's Jobs API: pass --address http://127.0.0.1:8265 "
                        "(after `ray dashboard cluster.yaml`) or set RAY_ADDRESS")
    if args.command:
        entrypoint = args.command
    else:
        from harness.cli.common import sweep_from_args

        # Validate here, before anything is uploaded: a typo should cost a second, not a cluster.
        local = argparse.Namespace(**{**vars(args), "address": None, "out": None})
        sweep = sweep_from_args(local)
        run_args = ([project_path(args.sweep, "sweep file")] if args.sweep else []) + _passed_flags(args)
        entrypoint = run_entrypoint(run_args, args.out or sweep.output or f"results/{sweep.name}")
    request = JobRequest(entrypoint, runtime_env(_bucket_settings(args.out)), args.submission_id)
    job_id = submit(args.address, request)
    print(job_id)
    sys.stdout.flush()
    if not args.follow:
        print(f"harness: follow with `ray job logs --follow {job_id} --address {args.address}`", file=sys.stderr)
        return 0
    return follow(args.address, job_id)
