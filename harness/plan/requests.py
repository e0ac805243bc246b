"""Finding lm-eval tasks and building their requests once, exactly as `simple_evaluate` would.

Few-shot contexts come from one RNG per task consumed document by document (lm-eval 0.4), so the
requests are built once here with rank 0 / world size 1 and only then split into shards. Separate
tasks have separate RNGs, so `plan.building` builds them in separate processes.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import REPO_ROOT, bundled
from harness.errors import UserError

# request_idx of the harness's own request: the log-likelihood of a generation task's gold target
# (the continuous twin of exact match). lm-eval numbers its own requests from 0.
TARGET_REQUEST_IDX = -1


def quiet_libraries(transformers: bool = True) -> None:
    """lm-eval and datasets log every task build; keep the terminal for our progress bar.
    `transformers=False` leaves transformers unimported (a request builder never needs it)."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    for name in ("lm-eval", "lm_eval", "datasets", "transformers", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except Exception:  # noqa: BLE001 - cosmetics only
        pass
    if not transformers:
        return
    try:
        import transformers as library

        library.logging.set_verbosity_error()
        library.utils.logging.disable_progress_bar()
    except Exception:  # noqa: BLE001
        pass


@dataclass
class BuiltTask:
    """A loaded lm-eval task with its instances (plus the harness's target requests)."""

    name: str
    task: Any  # lm_eval ConfigurableTask
    instances: list  # lm-eval Instances, including target-likelihood ones (request_idx -1)
    num_fewshot: int
    output_type: str
    index: int = 0  # position among the sweep's tasks: plans list tasks in this order, whenever built
    from_cache: bool = False

    def doc_ids(self) -> list[int]:
        return sorted({inst.doc_id for inst in self.instances})


def task_manager(include_paths: Sequence[Path], include_defaults: bool = True):
    from lm_eval.tasks import TaskManager

    existing = [str(p) for p in include_paths if Path(p).is_dir()]
    return TaskManager(include_path=existing or None, include_defaults=include_defaults)


def _unparsable_yaml(include_paths: Sequence[Path]) -> list[str]:
    """Task YAML files in the include paths that do not parse (lm-eval skips them silently)."""
    import yaml

    class _Lenient(yaml.SafeLoader):
        pass

    # lm-eval YAML may carry `!function` tags; only syntax errors matter here.
    _Lenient.add_multi_constructor("!", lambda loader, suffix, node: None)
    broken = []
    for folder in include_paths:
        for path in sorted(Path(folder).rglob("*.yaml")) if Path(folder).is_dir() else []:
            try:
                yaml.load(path.read_text(), Loader=_Lenient)  # noqa: S506 - lenient SafeLoader subclass
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
                broken.append(f"{path}{where}: {getattr(exc, 'problem', None) or exc}")
    return broken


def check_task_names(manager: Any, names: Sequence[str], include_paths: Sequence[Path]) -> None:
    known = set(manager.all_tasks)
    for name in names:
        if name in known:
            continue
        broken = _unparsable_yaml(include_paths)
        if broken:
            raise UserError(f"unknown task {name!r}; a task file does not parse: {broken[0]} (fix the YAML)")
        hint = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
        where = ", ".join(str(p) for p in include_paths) or "(none)"
        did = f"did you mean {', '.join(hint)}? " if hint else ""
        missing = "" if bundled("tasks") else (
            f"; this install has no tasks/ folder beside the package ({REPO_ROOT}), so the embedded suite "
            "(zoo_*) is missing: install with `pip install -e .` from a checkout, or point --include-path "
            "at the checkout's tasks/")
        raise UserError(f"unknown task {name!r}: {did}tasks are looked for in lm-eval's built-in "
                        f"tasks and in {where} (`harness ls tasks` lists them; add folders with --include-path)"
                        + missing)


def load_tasks(names: Sequence[str], include_paths: Sequence[Path]) -> dict[str, Any]:
    """lm-eval Task objects by name. Groups are expanded to their member tasks."""
    quiet_libraries()
    manager = manager_for(names, include_paths)
    check_task_names(manager, names, include_paths)
    try:
        loaded = manager.load(list(names))
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken task folder is user input
        raise UserError(f"could not load tasks {', '.join(names)}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''} (check the task YAML and its data files)") from None
    return dict(loaded["tasks"])


def manager_for(names: Sequence[str], include_paths: Sequence[Path], managers: dict | None = None) -> Any:
    """A TaskManager of our folders alone when they know `names`, else with lm-eval's built-in tasks
    too (indexing its ~15,000 tasks takes 5-15 s). `managers` keeps those made, for a process that
    loads tasks again and again (a request builder)."""
    managers = {} if managers is None else managers
    folders = tuple(str(p) for p in include_paths)

    def made(include_defaults: bool) -> Any:
        if (folders, include_defaults) not in managers:
            managers[folders, include_defaults] = task_manager(include_paths, include_defaults=include_defaults)
        return managers[folders, include_defaults]

    ours = made(False)
    return ours if set(names) <= set(ours.all_tasks) else made(True)


def resolve_num_fewshot(task: Any, requested: int | None) -> int:
    """simple_evaluate's rule: a task fixed at 0 shots stays at 0; None means the task's default or 0."""
    default = task.get_config("num_fewshot")
    if requested is not None and default != 0:
        return requested
    return default or 0


def build_requests(name: str, task: Any, num_fewshot: int | None, limit: int | None, seed: int) -> BuiltTask:
    """Build every request of a task once (rank 0 of 1) and add the target-likelihood requests."""
    return build_prepared(name, task, prepare_task(name, task, num_fewshot, seed), limit, seed)


def prepare_task(name: str, task: Any, num_fewshot: int | None, seed: int) -> int:
    """Set the task's num_fewshot (simple_evaluate's rule) and few-shot seed, as a build would;
    returns the shots. A cache key is taken after this, from the task as it will be built."""
    shots = resolve_num_fewshot(task, num_fewshot)
    task.set_config(key="num_fewshot", value=shots)
    task.set_fewshot_seed(seed=seed)
    _check_fewshot_pool(name, task, shots)
    return shots


def build_prepared(name: str, task: Any, shots: int, limit: int | None, seed: int) -> BuiltTask:
    """Build a task `prepare_task` has set up (its num_fewshot and seed)."""
    task.set_fewshot_seed(seed=seed)  # a fresh RNG, whatever ran since `prepare_task`
    try:
        task.build_all_requests(limit=limit, rank=0, world_size=1)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - bad data (missing fields) is user input
        raise UserError(f"task {name!r}: building requests failed: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''} (do the data rows have the fields the YAML reads?)") from None
    return _built(name, task, list(task.instances), shots)


def _built(name: str, task: Any, instances: list, shots: int) -> BuiltTask:
    """The checks every task's requests pass, and the harness's target requests added."""
    if not instances:
        raise UserError(f"task {name!r} has no documents; check its data files and split names")
    if any(inst.repeats != 1 for inst in instances):
        raise UserError(f"task {name!r} uses repeats > 1 (sampling); the harness scores greedy tasks only")
    output_type = task.get_config("output_type")
    if output_type == "generate_until":
        instances += target_requests(task, instances)
    return BuiltTask(name, task, instances, shots, output_type)


def _check_fewshot_pool(name: str, task: Any, shots: int) -> None:
    if shots <= 0:
        return
    docs = task.fewshot_docs()
    if docs is not None and len(docs) < shots:
        raise UserError(f"task {name!r}: num_fewshot {shots} but its few-shot split holds only "
                        f"{len(docs)} documents; lower --num-fewshot")


def target_requests(task: Any, generation_instances: list) -> list:
    """For each generation request, the log-likelihood of the gold target after the same prompt.

    This continuous twin of exact match is what shows whether an emergent jump is a metric
    artefact (Schaeffer et al. 2023).
    """
    from lm_eval.api.instance import Instance

    delimiter = task.config.target_delimiter
    extra = []
    for inst in generation_instances:
        target = task.doc_to_target(inst.doc)
        target = target[0] if isinstance(target, list) and target else target
        extra.append(Instance(request_type="loglikelihood", doc=inst.doc,
                              arguments=(inst.args[0], f"{delimiter}{target}"),
                              idx=TARGET_REQUEST_IDX, metadata=inst.metadata))
    return extra

