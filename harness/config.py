"""Typed, frozen sweep configuration: load a sweep YAML, validate it, apply CLI overrides.

Every error is a `UserError` naming the file, the key, the bad value and what is allowed,
because a typo found after an hour of GPU time is the most expensive kind.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.checkpoint import revision_label
from harness.errors import UserError

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("hf", "fast")
TASK_REVISIONS = ("all", "final")  # or one revision label that every model has, e.g. step4096
# The checkout this package runs from. Its tasks/ and sweeps/ are not package data: an install
# that is not editable has neither, and `bundled` says so instead of pointing at nothing.
REPO_ROOT = Path(__file__).resolve().parent.parent


def bundled(folder: str) -> Path | None:
    """The checkout's `tasks/` or `sweeps/` folder, or None when this install has none."""
    path = REPO_ROOT / folder
    return path if path.is_dir() else None


@dataclass(frozen=True)
class ModelSpec:
    """One model of a sweep: a local folder or a hub id, and the revisions to evaluate."""

    name: str
    path: str
    revisions: tuple[str | None, ...] = (None,)
    dtype: str = "auto"
    trust_remote_code: bool = False
    allow_pickle: bool = False
    n_params: int | None = None
    n_params_nonembedding: int | None = None
    tokens_trained: int | Mapping[str, int] | None = None

    def tokens_for(self, revision: str | None) -> int | None:
        """Tokens trained as the sweep states it (an int, or a per-revision mapping)."""
        if isinstance(self.tokens_trained, Mapping):
            return self.tokens_trained.get(revision_label(revision))
        return self.tokens_trained


@dataclass(frozen=True)
class TaskSpec:
    """One task: an lm-eval task name (built in, under tasks/, or under an include path)."""

    name: str
    num_fewshot: int | None = None
    limit: int | None = None
    # "all"; "final": only the last revision of each model; any other value names one revision every
    # model has (e.g. "step4096": sizes compared at equal tokens when their last revisions differ)
    revisions: str = "all"


@dataclass(frozen=True)
class Sweep:
    """A whole sweep: models x revisions x tasks, and how to run it."""

    models: tuple[ModelSpec, ...]
    tasks: tuple[TaskSpec, ...]
    name: str = "run"
    output: str | None = None
    include_path: tuple[str, ...] = ()
    num_fewshot: int | None = None
    limit: int | None = None
    seed: int = 1234
    batch_size: int = 16
    device: str = "auto"
    # Ours: the same numbers as lm-eval's HFLM (tests/unit/backends/test_fast_backend.py), faster (bench/results/backends.md).
    backend: str = "fast"
    docs_per_shard: int = 50
    # A shard also closes at this many estimated tokens: one long article can outweigh 40 short
    # passages, and the longest shard bounds the makespan.
    tokens_per_shard: int = 50_000
    bootstrap_iters: int = 1000
    shard_timeout_s: float = 3600.0
    max_attempts: int = 3
    workers: int | None = None
    address: str | None = None
    # Where the results live when `output` is only their working copy: the bucket URL of
    # `--out s3://...` (harness.results.mirror), recorded in the manifest.
    location: str | None = None
    source: str = field(default="<flags>", compare=False)

    @property
    def output_dir(self) -> Path:
        return Path(self.output or f"results/{self.name}")

    def task_include_paths(self) -> tuple[Path, ...]:
        """Folders lm-eval searches for tasks: the checkout's tasks/ first (when this install has
        one), then the sweep's, each of which must be a folder."""
        for folder in self.include_path:
            if not Path(folder).is_dir():
                raise UserError(f"{self.source}: include_path {folder!r} is not a folder; give a folder of "
                                "lm-eval task YAML (--include-path)")
        paths = [p for p in (bundled("tasks"),) if p is not None] + [Path(p) for p in self.include_path]
        return tuple(dict.fromkeys(p.resolve() for p in paths))


_SWEEP_KEYS = {
    "name": str, "output": str, "include_path": list, "num_fewshot": int, "limit": int,
    "seed": int, "batch_size": int, "device": str, "backend": str, "docs_per_shard": int,
    "tokens_per_shard": int,
    "bootstrap_iters": int, "shard_timeout_s": float, "max_attempts": int, "workers": int,
    "address": str, "models": list, "tasks": list,
}
_MODEL_KEYS = {
    "name": str, "path": str, "revision": str, "revisions": list, "dtype": str,
    "trust_remote_code": bool, "allow_pickle": bool, "n_params": int,
    "n_params_nonembedding": int, "tokens_trained": (int, dict),
}
_TASK_KEYS = {"name": str, "num_fewshot": int, "limit": int, "revisions": str}


def _where(source: str, key: str) -> str:
    return f"{source}: {key}"


def _check_keys(raw: Mapping, allowed: Mapping, source: str, prefix: str) -> None:
    for key in raw:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), list(allowed), n=1)
            fix = f"did you mean '{hint[0]}'?" if hint else f"allowed keys: {', '.join(allowed)}"
            raise UserError(f"{_where(source, prefix + str(key))}: unknown key; {fix}")


def _check_type(value: Any, expected: type | tuple, source: str, key: str) -> Any:
    if value is None:
        return None
    types = expected if isinstance(expected, tuple) else (expected,)
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    # bool is an int in Python; a YAML `true` where a count is expected is a mistake.
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        names = " or ".join(t.__name__ for t in types)
        raise UserError(
            f"{_where(source, key)}: expected {names}, got {type(value).__name__} {value!r}"
        )
    return value


def _check_choice(value: str, allowed: tuple[str, ...], source: str, key: str) -> str:
    if value not in allowed:
        raise UserError(f"{_where(source, key)}: {value!r} is not one of {', '.join(allowed)}")
    return value


def check_positive(value: int | None, what: str, allow_zero: bool = False) -> None:
    """Counts that must be positive (limit, batch size, ...): zero means a sweep that does nothing."""
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else "at least 1"
        raise UserError(f"{what} must be {bound}, got {value}")


def default_model_name(path: str) -> str:
    return Path(path.rstrip("/")).name or path


def parse_model_ref(ref: str) -> tuple[str, str | None]:
    """`PATH_OR_ID@REVISION` as accepted by --models."""
    path, sep, revision = ref.partition("@")
    return path, (revision if sep and revision else None)


def _typed_entry(raw: Any, allowed: Mapping, source: str, where: str, required: str) -> dict:
    """One `models:`/`tasks:` entry as a dict of checked values; `required` must be present."""
    if not isinstance(raw, Mapping):
        raise UserError(f"{_where(source, where)}: expected a mapping or a string")
    prefix = where + "."
    _check_keys(raw, allowed, source, prefix)
    values = {k: _check_type(v, allowed[k], source, prefix + k) for k, v in raw.items()}
    if not values.get(required):
        raise UserError(f"{_where(source, prefix + required)}: missing; every entry needs `{required}:`")
    return values


def _model_from_raw(raw: Any, source: str, i: int) -> ModelSpec:
    prefix = f"models[{i}]."
    if isinstance(raw, str):
        path, rev = parse_model_ref(raw)
        return ModelSpec(name=default_model_name(path), path=path, revisions=(rev,))
    values = _typed_entry(raw, _MODEL_KEYS, source, f"models[{i}]", "path")
    if "revision" in values and "revisions" in values:
        raise UserError(f"{_where(source, prefix + 'revision')}: give revision or revisions, not both")
    revisions = values.pop("revisions", None) or [values.pop("revision", None)]
    values.pop("revision", None)
    revisions = tuple(None if r is None else str(r) for r in revisions)
    if len(set(revisions)) != len(revisions):
        raise UserError(f"{_where(source, prefix + 'revisions')}: duplicate revisions {list(revisions)}")
    dtype = _check_choice(values.pop("dtype", None) or "auto", DTYPES, source, prefix + "dtype")
    name = values.pop("name", None) or default_model_name(values["path"])
    for count in ("n_params", "n_params_nonembedding"):
        check_positive(values.get(count), f"{source}: {prefix}{count}")
    return ModelSpec(name=name, revisions=revisions, dtype=dtype, **values)


def _task_from_raw(raw: Any, source: str, i: int) -> TaskSpec:
    prefix = f"tasks[{i}]."
    if isinstance(raw, str):
        return TaskSpec(name=raw)
    values = _typed_entry(raw, _TASK_KEYS, source, f"tasks[{i}]", "name")
    check_positive(values.get("limit"), f"{source}: {prefix}limit")
    check_positive(values.get("num_fewshot"), f"{source}: {prefix}num_fewshot", allow_zero=True)
    values["revisions"] = values.get("revisions") or "all"
    return TaskSpec(**values)


def check_task_revisions(sweep: Sweep) -> None:
    """A task that names one revision (not all/final) needs every model to list it: UserError otherwise."""
    for task in sweep.tasks:
        if task.revisions in TASK_REVISIONS:
            continue
        for model in sweep.models:
            labels = [revision_label(r) for r in model.revisions]
            if task.revisions not in labels:
                raise UserError(f"{sweep.source}: task {task.name} runs on revisions: {task.revisions}, which model "
                                f"{model.name} does not list (it has {', '.join(labels)}); add it to the model's "
                                "revisions, or use all or final")


def sweep_from_mapping(raw: Mapping, source: str) -> Sweep:
    """Validate a parsed sweep mapping; `source` names the file in error messages."""
    if not isinstance(raw, Mapping):
        raise UserError(f"{source}: a sweep must be a mapping with models: and tasks:")
    _check_keys(raw, _SWEEP_KEYS, source, "")
    values = {k: _check_type(v, _SWEEP_KEYS[k], source, k) for k, v in raw.items()}
    models = tuple(_model_from_raw(m, source, i) for i, m in enumerate(values.pop("models", None) or []))
    tasks = tuple(_task_from_raw(t, source, i) for i, t in enumerate(values.pop("tasks", None) or []))
    values["include_path"] = tuple(str(p) for p in values.get("include_path") or ())
    values = {k: v for k, v in values.items() if v is not None}
    sweep = Sweep(models=models, tasks=tasks, source=source, **values)
    return validate(sweep)


def validate(sweep: Sweep) -> Sweep:
    """Checks that hold for a sweep however it was built (file, flags, or both)."""
    src = sweep.source
    if not sweep.models:
        raise UserError(f"{src}: models: is empty; name at least one model (or pass --models)")
    if not sweep.tasks:
        raise UserError(f"{src}: tasks: is empty; name at least one task (or pass --tasks)")
    names = [m.name for m in sweep.models]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"{src}: models: duplicate model name {dupes[0]!r}; give each model a unique `name:`")
    check_task_revisions(sweep)
    check_positive(sweep.limit, f"{src}: limit")
    check_positive(sweep.num_fewshot, f"{src}: num_fewshot", allow_zero=True)
    check_positive(sweep.batch_size, f"{src}: batch_size")
    check_positive(sweep.docs_per_shard, f"{src}: docs_per_shard")
    check_positive(sweep.tokens_per_shard, f"{src}: tokens_per_shard")
    check_positive(sweep.workers, f"{src}: workers")
    check_positive(sweep.max_attempts, f"{src}: max_attempts")
    _check_choice(sweep.device, DEVICES, src, "device")
    _check_choice(sweep.backend, BACKENDS, src, "backend")
    return sweep


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep YAML file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep file {str(path)!r} does not exist; pass an existing YAML file (see sweeps/)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise UserError(f"{path}: malformed YAML at {where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: malformed YAML: {exc}") from None
    return sweep_from_mapping(raw or {}, str(path))


def _merge_revisions(specs: list[ModelSpec]) -> tuple[ModelSpec, ...]:
    """`--models X@step1,X@step2` is one model with two revisions, as `revisions:` is in YAML."""
    merged: dict[str, ModelSpec] = {}
    for spec in specs:
        if spec.path in merged:
            held = merged[spec.path]
            if {revision_label(r) for r in spec.revisions} & {revision_label(r) for r in held.revisions}:
                raise UserError(f"--models: {spec.path}@{revision_label(spec.revisions[0])} is given twice; name each "
                                "revision once")
            spec = replace(held, revisions=held.revisions + spec.revisions)
        merged[spec.path] = spec
    return tuple(merged.values())


def apply_overrides(sweep: Sweep | None, **flags: Any) -> Sweep:
    """Flags override the file. `models`/`tasks` are comma-separated strings from the CLI."""
    models = flags.pop("models", None)
    tasks = flags.pop("tasks", None)
    include = flags.pop("include_path", None)
    changes: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
    if models:
        refs = [ref.strip() for ref in models.split(",") if ref.strip()]
        changes["models"] = _merge_revisions([_model_from_raw(ref, "--models", i) for i, ref in enumerate(refs)])
    if tasks:
        changes["tasks"] = tuple(TaskSpec(name=t.strip()) for t in tasks.split(",") if t.strip())
    if include:
        changes["include_path"] = tuple(p for p in include.split(",") if p)
    if sweep is None:
        sweep = Sweep(models=(), tasks=(), source="--models/--tasks")
    return validate(replace(sweep, **changes))
