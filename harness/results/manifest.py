"""manifest.json: what was run, with what, where, and what happened to every shard.

It never records secrets: environment variables whose names contain TOKEN, KEY, SECRET or
PASSWORD are left out, and hub tokens are never read.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import subprocess
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.checkpoint import revision_label
from harness.config import REPO_ROOT, Sweep
from harness.errors import UserError
from harness.plan.shards import Plan
from harness.results.store import write_text_atomic

MANIFEST = "manifest.json"
_SECRET = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
_RECORDED_ENV = re.compile(r"^(CUDA_|RAY_|HF_|OMP_|TRANSFORMERS_|TOKENIZERS_)")
_PACKAGES = ("torch", "transformers", "lm_eval", "ray", "pyarrow", "pandas", "scipy", "numpy", "harness")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def recorded_environment(environ: dict[str, str]) -> dict[str, str]:
    """The environment variables that change results, minus anything that looks like a secret."""
    return {k: v for k, v in sorted(environ.items()) if _RECORDED_ENV.match(k) and not _SECRET.search(k)}


def sweep_record(sweep: Sweep) -> dict[str, Any]:
    record = dataclasses.asdict(sweep)
    record["models"] = [{k: v for k, v in m.items()} for m in record["models"]]
    return record


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    write_text_atomic(json.dumps(manifest, indent=2, default=str) + "\n", run_dir / MANIFEST)


def check_output_dir(sweep: Sweep) -> Path:
    """The output folder must be a folder we may write, holding no results of another sweep."""
    run_dir = sweep.output_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"output path {str(run_dir)!r} is a file; pass a folder with --out")
    probe = run_dir if run_dir.exists() else next((p for p in run_dir.parents if p.exists()), Path("."))
    if not probe.is_dir():
        raise UserError(f"output path {str(run_dir)!r} lies under the file {str(probe)!r}; pass a folder with --out")
    if not os.access(probe, os.W_OK):
        raise UserError(f"output folder {str(run_dir)!r} is not writable; pass another folder with --out")
    previous = read_manifest(run_dir)
    if previous and previous.get("kind") == "import":
        raise UserError(f"output folder {str(run_dir)!r} holds results of `harness import`; imports and runs are "
                        f"not mixed: pass a new folder with --out")
    return run_dir


def model_records(plan: Plan) -> dict[str, dict[str, Any]]:
    """What each model name of the run points at: its source, hub revision and commit, and the
    content fingerprint its shard keys hash (local files by name and sha256)."""
    return {m.key: {"source": m.checkpoint.source, "revision": m.revision, "commit": m.checkpoint.commit,
                    "content": json.loads(json.dumps(plan.fingerprints.get(m.key)))}
            for m in plan.model_revisions}


def _what_differs(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    said = []
    if old.get("source") != new["source"]:
        said.append(f"was {old.get('source')}, now {new['source']}")
    if old.get("commit") != new["commit"]:
        said.append(f"commit {old.get('commit') or 'unresolved'} -> {new['commit'] or 'unresolved'}")
    old_files, new_files = _files(old.get("content")), _files(new["content"])
    if old_files is not None and new_files is not None:
        changed = sorted(n for n in old_files.keys() & new_files.keys() if old_files[n] != new_files[n])
        for label, names in (("changed", changed), ("new", sorted(new_files.keys() - old_files.keys())),
                             ("gone", sorted(old_files.keys() - new_files.keys()))):
            if names:
                said.append(f"{label}: {', '.join(names[:4])}{' ...' if len(names) > 4 else ''}")
    return "; ".join(said) or "its content fingerprint differs"


def _files(content: Any) -> dict[str, str] | None:
    """A local fingerprint ([[name, sha256], ...]) as a dict; None for a hub one."""
    if isinstance(content, list) and all(isinstance(p, list) and len(p) == 2 for p in content):
        return {name: digest for name, digest in content}
    return None


def check_same_models(run_dir: Path, plan: Plan) -> None:
    """A run folder grows (models, revisions, tasks and limits may change), but one name may not
    come to mean two things: a model name@revision whose files or hub commit differ from what the
    folder's results were computed on is refused, saying what differs."""
    before = (read_manifest(run_dir) or {}).get("models") or {}
    for key, now in model_records(plan).items():
        old = before.get(key)
        if old is not None and old.get("content") != now["content"]:
            raise UserError(f"model {key} now points at other weights than the results in {str(run_dir)!r} "
                            f"({_what_differs(old, now)}); give it a new name in the sweep, or pass a new "
                            f"folder with --out")


def new_manifest(plan: Plan) -> dict[str, Any]:
    """Everything about a run that is known before its first shard: the one place it is assembled."""
    sweep = plan.sweep
    return {"sweep": sweep_record(sweep), "models": model_records(plan),
            "versions": package_versions(), "git_commit": git_commit(),
            "environment": recorded_environment(dict(os.environ)), "tasks": task_records(plan)}


def task_records(plan: Plan) -> dict[str, dict[str, Any]]:
    """The plan's tasks so far (a run's tasks arrive as they are built: `engine.feed`)."""
    return {n: {"num_fewshot": b.num_fewshot, "output_type": b.output_type, "documents": len(b.doc_ids())}
            for n, b in plan.tasks.items()}


def shard_entries(plan: Plan, outcomes: Mapping[str, Any], reused: set[str]) -> list[dict]:
    """One manifest entry per planned shard: reused, done, failed, or still pending."""
    entries = []
    for shard in plan.shards:
        outcome = outcomes.get(shard.key)
        status = "reused" if shard.key in reused else (outcome.status if outcome else "pending")
        entries.append({"key": shard.key, "model": shard.model_revision.name,
                        "revision": shard.model_revision.revision, "task": shard.task,
                        "documents": len(shard.doc_ids), "requests": shard.n_requests,
                        "status": status, "seconds": round(outcome.seconds, 4) if outcome else None,
                        "attempts": outcome.attempts if outcome else 0,
                        "error": outcome.error if outcome else None,
                        "worker": outcome.worker if outcome else None})
    return entries


class ManifestRecorder:
    """Keeps manifest.json up to date while a run goes on.

    The Parquet files are the truth and the manifest is their index, so rewrites while shards
    finish are rate-limited (`every_s`); `save` writes at once (start, interrupt, end).
    `state` is the engine's run state: outcomes, measured model facts, cluster, events.
    """

    def __init__(self, run_dir: Path, plan: Plan, state: Any, reused: set[str], every_s: float = 2.0) -> None:
        self.run_dir, self.plan, self.state, self.reused, self.every_s = run_dir, plan, state, reused, every_s
        previous = read_manifest(run_dir) or {}
        state.replicas.update(previous.get("replicas") or {})  # facts measured by earlier runs
        self.manifest = new_manifest(plan)
        self.last_write = 0.0

    def save(self, status: str, **extra: Any) -> None:
        self.manifest.update(status=status, replicas=self.state.replicas, cluster=self.state.resources,
                             events=self.state.events, **extra)
        self.manifest["shards"] = shard_entries(self.plan, self.state.outcomes, self.reused)
        self.manifest["tasks"] = task_records(self.plan)
        write_manifest(self.run_dir, self.manifest)
        self.last_write = time.monotonic()

    def shard_done(self) -> None:
        if time.monotonic() - self.last_write > self.every_s:
            self.save("running")

    def failed(self) -> list[dict]:
        return [e for e in shard_entries(self.plan, self.state.outcomes, self.reused) if e["status"] == "failed"]


def failed_line(entry: Mapping[str, Any]) -> str:
    return (f"harness: failed shard {entry['key']} ({entry['model']}@{revision_label(entry['revision'])} "
            f"{entry['task']}): {entry['error']}")
