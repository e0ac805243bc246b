"""The key of a task's built requests: a hash of everything that determines them.

lm-eval's requests are a pure function of the task's resolved config (few-shot config included),
its code (lm-eval's version; a task's own functions and classes by the files that define them and
the code loaded from them), its documents (eval and few-shot pool, hashed by content, so a changed
data file, split or `process_docs` changes the key whatever the files are called), num_fewshot,
seed and limit, plus the harness's own additions. `plan.request_cache` stores them under it.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Sequence
from dataclasses import fields, is_dataclass
from functools import partial
from pathlib import Path
from typing import Any

# Bump when what a cache entry holds or how it is encoded changes.
CACHE_FORMAT = 1


def task_documents(task: Any, limit: int | None) -> list[tuple[int, Any]]:
    """(doc_id, doc) exactly as `build_all_requests` enumerates them (rank 0 of 1)."""
    return list(task.doc_iterator(rank=0, limit=limit, world_size=1))


# -- the key -----------------------------------------------------------------------------------

def request_key(name: str, task: Any, num_fewshot: int, seed: int, limit: int | None,
                docs: Sequence[tuple[int, Any]], harness_part: str = "") -> str:
    """sha256 of everything that determines a task's requests. `task` must already carry the
    num_fewshot and seed it will be built with (`requests.prepare_task`); `docs` are its
    `task_documents`; `harness_part` names the harness's own additions (a hash of their code).
    Documents are hashed by content, so a changed data file, split or `process_docs` changes the
    key whatever the files are called."""
    from importlib.metadata import version

    fewshot = list(task.fewshot_docs()) if num_fewshot > 0 else None  # no example is drawn at 0 shots
    payload = {
        "format": CACHE_FORMAT, "lm_eval": version("lm_eval"), "jinja2": version("jinja2"),
        "task": name, "class": _describe_callable(type(task)), "config": _canonical(task.config),
        "num_fewshot": num_fewshot, "seed": seed, "limit": limit,
        "docs": _pickle_digest(list(docs)), "fewshot_docs": _pickle_digest(fewshot), "harness": harness_part,
    }
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def _pickle_digest(value: Any) -> str:
    # Pickle is exact for documents (types, order, every byte of binary fields). Equal documents
    # that share objects differently could pickle differently: that costs a rebuild, never a
    # wrong hit.
    return hashlib.sha256(pickle.dumps(value, protocol=5)).hexdigest()


def _canonical(value: Any) -> Any:
    """A JSON-ready description of a config value that tells apart what renders differently
    (tuple from list, key order kept); functions by their source file's content."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if is_dataclass(value) and not isinstance(value, type):  # first: lm-eval's TaskConfig is also a dict
        return {"dataclass": _describe_callable(type(value)),
                "fields": {f.name: _canonical(getattr(value, f.name)) for f in fields(value)}}
    if isinstance(value, dict):
        return {"dict": [[_canonical(k), _canonical(v)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [_canonical(v) for v in value]}
    if isinstance(value, partial):
        return {"partial": _describe_callable(value.func), "args": _canonical(value.args),
                "keywords": _canonical(value.keywords)}
    if callable(value):
        return _describe_callable(value)
    if isinstance(value, Path):
        return {"path": str(value)}
    return {"repr": repr(value)}  # an address in it makes every run a miss: safe, never wrong


def _describe_callable(fn: Any) -> dict:
    """lm-eval's own functions and classes by name (its version is in the key); others by name,
    the sha256 of the files that define them and of the code loaded from them (a class: its
    methods'). The files catch an edited helper in a task's utils.py; the loaded code catches a
    process that still runs the version it imported before the edit."""
    module = getattr(fn, "__module__", None) or ""
    described: dict[str, Any] = {"name": f"{module}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"}
    if _is_lm_eval(module):
        return described
    codes = _codes(fn)
    files = sorted({Path(code.co_filename) for code in codes if Path(code.co_filename).is_file()})
    described["files"] = [hashlib.sha256(path.read_bytes()).hexdigest() for path in files]
    described["code"] = [_code_digest(code) for code in codes]
    if not codes:
        described["repr"] = repr(fn)  # C code, or an object whose repr has an address: a miss at worst
    return described


def _is_lm_eval(module: str) -> bool:
    return module.split(".")[0] in ("lm_eval", "builtins")


def _codes(fn: Any) -> list:
    """The code objects `fn` runs: a function's; a class's methods', along its bases outside lm-eval."""
    if isinstance(fn, type):
        functions = [getattr(attr, "__func__", attr) for klass in fn.__mro__ if not _is_lm_eval(klass.__module__)
                     for _, attr in sorted(vars(klass).items())]
    else:
        functions = [getattr(fn, "__func__", fn)]
    return [code for f in functions if (code := getattr(f, "__code__", None)) is not None]


def _code_digest(code: Any) -> str:
    """sha256 of a code object's bytecode, names and constants, nested code (comprehensions,
    inner functions) included; frozensets sorted, since their order changes between processes."""
    def const(value: Any) -> str:
        if hasattr(value, "co_code"):
            return _code_digest(value)
        if isinstance(value, frozenset):
            return f"frozenset({sorted(map(const, value))})"
        if isinstance(value, tuple):
            return f"({', '.join(map(const, value))})"
        return repr(value)

    return hashlib.sha256(repr((code.co_code, code.co_names, code.co_varnames,
                                [const(c) for c in code.co_consts])).encode()).hexdigest()
