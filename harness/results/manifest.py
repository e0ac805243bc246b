"""manifest.json: what was run, with what, where, and what happened to every shard.

It never records secrets: environment variables whose names contain TOKEN, KEY, SECRET or
PASSWORD are left out, and hub tokens are never read.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.config import REPO_ROOT, Sweep
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


def sweep_identity(sweep: Sweep) -> dict[str, Any]:
    """The parts of a sweep that define its results (not how it runs): used to refuse mixing runs."""
    return {"models": sorted({(m.name, m.path) for m in sweep.models}),
            "seed": sweep.seed, "backend": sweep.backend}


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
