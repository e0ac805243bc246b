"""The built requests of a task, kept on disk once and loaded instead of rebuilt.

Rendering few-shot contexts (lm-eval's `build_all_requests`) is the slow part of planning: minutes
per large task. Its result is a pure function of what `plan.request_key` hashes, so it is cached
under that key: one Arrow IPC file per task and key, written atomically,
`$HARNESS_CACHE_DIR/requests/<task>-<key>.arrow`, else `$XDG_CACHE_HOME/harness/requests/` (by
default `~/.cache/harness/requests/`).

An entry is trusted only whole: its metadata must name the key, the row count and a digest of the
values it holds (recomputed on load), or it is rebuilt with one line saying why. Documents are not
stored: they are re-attached from the task's own documents by doc_id (reading them is cheap), and a
store refuses requests whose `doc` is not exactly their document's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from harness.errors import first_line
from harness.files import TMP_PREFIX, atomic_path, remove_stale_temps, safe_name, user_cache_dir

CACHE_ENV = "HARNESS_CACHE_DIR"
_META_KEY, _META_ROWS, _META_DIGEST = b"harness.request_key", b"harness.rows", b"harness.digest"
_INT_COLUMNS = ("doc_id", "idx", "n_args")
_VALUE_COLUMNS = ("request_type", "task_name", "repeats")  # then arg0, arg1, ...


class NotCacheable(Exception):
    """Requests this cache cannot store exactly (they are used, just not kept)."""


class _BadEntry(Exception):
    """Why an entry is not trusted (the rest of the line that says it is rebuilt)."""


def default_cache_dir() -> Path:
    """`$HARNESS_CACHE_DIR/requests`, else `$XDG_CACHE_HOME/harness/requests` (`~/.cache/harness/requests`)."""
    base = os.environ.get(CACHE_ENV)
    return (Path(base).expanduser() if base else user_cache_dir()) / "requests"


# -- encoding: one row per request, each argument as a dictionary-encoded text -------------------

def _encode(value: Any) -> str:
    """A request's value as text: "s" + a string; "j" + JSON that reads back with the same repr
    (generation kwargs); else "p" + base64 pickle."""
    if type(value) is str:
        return "s" + value
    try:
        text = json.dumps(value)
        if repr(json.loads(text)) == repr(value):
            return "j" + text
    except (TypeError, ValueError):
        pass
    return "p" + base64.b64encode(pickle.dumps(value, protocol=5)).decode("ascii")


def _decode(text: str) -> Any:
    kind, body = text[0], text[1:]
    if kind == "s":
        return body
    if kind == "j":
        return json.loads(body)
    if kind == "p":
        return pickle.loads(base64.b64decode(body))  # noqa: S301 - our own entry, its digest checked first
    raise ValueError(f"unknown value kind {kind!r}")


class _Column:
    """Distinct encoded values in order of first use, and each row's index into them. Strings are
    looked up by value: the four choices of a question share one context."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.index: dict[Any, int] = {}
        self.rows: list[int] = []

    def add(self, value: Any) -> None:
        lookup = value if type(value) is str else ("encoded", _encode(value))
        position = self.index.get(lookup)
        if position is None:
            position = self.index[lookup] = len(self.values)
            self.values.append(_encode(value) if type(value) is str else lookup[1])
        self.rows.append(position)

    def absent(self) -> None:
        self.rows.append(-1)


def _columns(instances: Sequence[Any], docs_by_id: dict[int, Any]) -> tuple[dict, dict]:
    """Integer columns and value columns of a task's requests; NotCacheable if a request carries
    anything a reload would not give back exactly."""
    from lm_eval.api.instance import Instance

    ints: dict[str, list[int]] = {name: [] for name in _INT_COLUMNS}
    values: dict[str, _Column] = {name: _Column() for name in _VALUE_COLUMNS}
    width = max(len(i.arguments) if type(i.arguments) is tuple else 1 for i in instances)
    args = [_Column() for _ in range(width)]
    for inst in instances:
        _check_cacheable(inst, Instance, docs_by_id)
        bare = type(inst.arguments) is not tuple
        arguments = (inst.arguments,) if bare else inst.arguments
        for name, value in zip(_INT_COLUMNS, (inst.doc_id, inst.idx, -1 if bare else len(arguments))):
            ints[name].append(value)
        for name, value in zip(_VALUE_COLUMNS, (inst.request_type, inst.task_name, inst.repeats)):
            values[name].add(value)
        for position, column in enumerate(args):
            column.add(arguments[position]) if position < len(arguments) else column.absent()
    values.update({f"arg{n}": column for n, column in enumerate(args)})
    return ({name: np.asarray(v, dtype=np.int64) for name, v in ints.items()},
            {name: (c.values, np.asarray(c.rows, dtype=np.int32)) for name, c in values.items()})


def _check_cacheable(inst: Any, instance_type: type, docs_by_id: dict[int, Any]) -> None:
    meta = inst.metadata
    if type(inst) is not instance_type or type(meta) is not tuple or len(meta) != 3:
        raise NotCacheable(f"a request of type {type(inst).__name__} with metadata {meta!r}")
    if (inst.task_name, inst.doc_id, inst.repeats) != meta or type(inst.doc_id) is not int or type(inst.idx) is not int:
        raise NotCacheable(f"request {inst.doc_id!r}/{inst.idx!r}: its fields disagree with its metadata")
    if inst.resps or inst.filtered_resps:
        raise NotCacheable("requests that already hold responses")
    doc = docs_by_id.get(inst.doc_id)
    # Re-attaching by doc_id must give back this very document (pickles compared when a NaN in it
    # makes == say no).
    if inst.doc is not doc and inst.doc != doc and pickle.dumps(inst.doc) != pickle.dumps(doc):
        raise NotCacheable(f"request of document {inst.doc_id} carries another document")


def _digest(ints: dict[str, np.ndarray], values: dict[str, tuple[list[str], np.ndarray]]) -> str:
    """sha256 of a task's requests as columns: computed when stored, recomputed on load, so any
    byte of an entry that changed is caught before a value is used."""
    digest = hashlib.sha256()
    for name in sorted(ints):
        digest.update(name.encode() + b"\0" + np.ascontiguousarray(ints[name], dtype="<i8").tobytes())
    for name in sorted(values):
        texts, rows = values[name]
        encoded = [text.encode() for text in texts]
        digest.update(name.encode() + b"\0" + np.asarray([len(e) for e in encoded], dtype="<i8").tobytes())
        digest.update(b"".join(encoded) + np.ascontiguousarray(rows, dtype="<i4").tobytes())
    return digest.hexdigest()


def _to_table(ints: dict, values: dict, key: str) -> pa.Table:
    arrays = {name: pa.array(column, pa.int64()) for name, column in ints.items()}
    for name, (texts, rows) in values.items():
        indices = pa.array(rows, pa.int32(), mask=rows < 0)
        arrays[name] = pa.DictionaryArray.from_arrays(indices, pa.array(texts, pa.large_string()))
    stamp = {_META_KEY: key.encode(), _META_ROWS: str(len(ints["doc_id"])).encode(),
             _META_DIGEST: _digest(ints, values).encode()}
    return pa.table(arrays).replace_schema_metadata(stamp)


def _from_table(table: pa.Table, key: str) -> tuple[dict, dict]:
    """The columns of an entry, after checking that it is whole and is this key's."""
    stamp = table.schema.metadata or {}
    if stamp.get(_META_KEY) != key.encode():
        raise _BadEntry(f"holds the requests of another key ({stamp.get(_META_KEY, b'none')[:16].decode(errors='replace')}...)")
    if stamp.get(_META_ROWS) != str(table.num_rows).encode():
        raise _BadEntry(f"holds {table.num_rows} requests, its metadata says {stamp.get(_META_ROWS)!r}")
    if table.num_rows == 0 or any(len(c.chunks) != 1 for c in table.columns):
        raise _BadEntry("is not one whole batch of requests")
    table.validate(full=True)  # offsets inside their buffers before any value is read
    ints = {name: table.column(name).chunk(0).to_numpy() for name in _INT_COLUMNS}
    values = {}
    for name in table.column_names:
        if name not in _INT_COLUMNS:
            column = table.column(name).chunk(0)
            values[name] = (column.dictionary.to_pylist(), column.indices.fill_null(-1).to_numpy())
    if _digest(ints, values).encode() != stamp.get(_META_DIGEST):
        raise _BadEntry("does not match its digest (garbled)")
    return ints, values


_IMMUTABLE = (str, int, float, bool, type(None))


def _row_values(texts: list[str], rows: np.ndarray) -> list:
    """Each row's value. Immutable ones (strings, numbers) are shared between rows, as in a fresh
    build; others (generation kwargs) are decoded per row, as lm-eval gives each request its copy."""
    decoded = [_decode(text) for text in texts]
    shared = [value if type(value) in _IMMUTABLE else None for value in decoded]
    return [None if r < 0 else shared[r] if shared[r] is not None else _decode(texts[r]) for r in rows.tolist()]


def _instances(ints: dict, values: dict, docs_by_id: dict[int, Any]) -> list:
    from lm_eval.api.instance import Instance

    doc_ids = ints["doc_id"].tolist()
    missing = set(doc_ids) - set(docs_by_id)
    if missing:
        raise _BadEntry(f"names documents the task lacks (doc_id {min(missing)})")
    column = {name: _row_values(*values[name]) for name in values}
    args = [column[f"arg{n}"] for n in range(len(values) - len(_VALUE_COLUMNS))]
    out = []
    for row, (doc_id, idx, width) in enumerate(zip(doc_ids, ints["idx"].tolist(), ints["n_args"].tolist())):
        arguments = args[0][row] if width < 0 else tuple(arg[row] for arg in args[:width])
        out.append(Instance(request_type=column["request_type"][row], doc=docs_by_id[doc_id], arguments=arguments,
                            idx=idx, metadata=(column["task_name"][row], doc_id, column["repeats"][row])))
    return out


# -- the folder ----------------------------------------------------------------------------------

CACHE_STALE_TEMP_SECONDS = 3600  # a builder's temporary file untouched this long was left by a killed process


@dataclass(frozen=True)
class RequestCache:
    """A folder of cache entries (`default_cache_dir()` unless given)."""

    folder: Path

    def path(self, name: str, key: str) -> Path:
        return self.folder / f"{safe_name(name)}-{key[:32]}.arrow"

    def problem(self) -> str | None:
        """Why entries cannot be written here (None: they can); removes stale temporary files."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            probe = self.folder / f"{TMP_PREFIX}{secrets.token_hex(8)}"
            probe.write_bytes(b"")
            probe.unlink()
            remove_stale_temps(self.folder, CACHE_STALE_TEMP_SECONDS)
        except OSError as exc:
            return first_line(exc)
        return None

    def store(self, name: str, key: str, instances: Sequence[Any], docs: Sequence[tuple[int, Any]]) -> Path:
        """Write one task's requests atomically; NotCacheable if they cannot be given back exactly."""
        if not instances:
            raise NotCacheable("no requests")
        try:
            table = _to_table(*_columns(instances, dict(docs)), key)
        except (pa.ArrowException, UnicodeError) as exc:
            raise NotCacheable(first_line(exc)) from None
        path = self.path(name, key)
        options = pa.ipc.IpcWriteOptions(compression="zstd")
        # Two runs building one key both write whole files; the last rename wins.
        with atomic_path(path) as tmp, pa.OSFile(str(tmp), "wb") as sink, \
                pa.ipc.new_file(sink, table.schema, options=options) as writer:
            writer.write_table(table)
        return path

    def load(self, name: str, key: str, docs: Sequence[tuple[int, Any]], stream=None) -> list | None:
        """The task's requests with their documents re-attached, or None: no entry, or one that is
        not whole (one line on `stream` says so; it is removed and will be rebuilt)."""
        path = self.path(name, key)
        if not path.is_file():
            return None
        try:
            with pa.ipc.open_file(pa.BufferReader(path.read_bytes())) as reader:
                table = reader.read_all()
            return _instances(*_from_table(table, key), dict(docs))
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with an entry, it is rebuilt
            print(f"harness: request cache entry {path} {_reason(exc)}; rebuilding it", file=stream or sys.stderr)
            path.unlink(missing_ok=True)
            return None


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, _BadEntry) else f"does not read as Arrow ({first_line(exc, with_type=True)})"
