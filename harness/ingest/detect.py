"""Which sources to read, and what each one is, told by content (a file's name may lie).

* A file starting with Parquet's magic bytes: a score table (`harness.ingest.table`).
* A JSON object with a `results` mapping of tasks: an lm-eval results file, 0.3 or 0.4
  (`harness.ingest.lmeval_json.lmeval_version` tells which).
* JSON Lines whose objects carry `doc_id`, `resps` and `filter`: an lm-eval samples file.
* Text whose first line names the table's required columns: a CSV score table.
Anything else is refused, naming the file. A folder given as a source is searched recursively for
*.json, *.jsonl, *.csv and *.parquet (other files, such as a README, are passed over), and each found
is then told by content like a named file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from harness.errors import UserError
from harness.ingest.lmeval_json import lmeval_version, parse_results
from harness.ingest.lmeval_samples import is_sample_line, parse_samples
from harness.ingest.records import Parsed
from harness.ingest.table import REQUIRED, parse_table

SUFFIXES = {".json", ".jsonl", ".csv", ".parquet"}
_PARQUET_MAGIC = b"PAR1"


def expand(sources: Sequence[Path]) -> list[Path]:
    """Every file to read, each once, in a stable order (named files first, in the order given)."""
    files: list[Path] = []
    for source in sources:
        source = Path(source)
        if source.is_dir():
            found = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
            if not found:
                raise UserError(f"{source}: no *.json, *.jsonl, *.csv or *.parquet file in this folder; pass "
                                "lm-eval output or a score table")
            files += found
        elif source.is_file():
            files.append(source)
        else:
            raise UserError(f"{source}: no such file or folder; pass lm-eval output or a score table")
    seen: set[Path] = set()
    unique = []
    for path in files:  # a file named twice (or found under two given folders) is read once
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append(path)
    return unique


def read_source(path: Path) -> Parsed:
    """Read one file as whatever its content says it is; UserError when it is no result at all."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror}); check the path and its permissions") from None
    if raw.startswith(_PARQUET_MAGIC):
        return parse_table(path, "parquet")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _not_a_result(path, "binary content") from None
    if text.lstrip().startswith("{"):
        return _read_json(path, text)
    header = text.split("\n", 1)[0]
    if all(column in {c.strip().strip('"') for c in header.split(",")} for column in REQUIRED):
        return parse_table(path, "csv")
    raise _not_a_result(path, "neither JSON nor a CSV with the score table's header")


def _read_json(path: Path, text: str) -> Parsed:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return _read_json_lines(path, text)
    version = lmeval_version(data)
    if version is None:
        raise _not_a_result(path, "JSON without an lm-eval `results` mapping of tasks")
    return parse_results(path, data, version)


def _read_json_lines(path: Path, text: str) -> Parsed:
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise _not_a_result(path, f"line {number} is not JSON") from None
        if not is_sample_line(obj):
            raise _not_a_result(path, f"line {number} is not an lm-eval sample (needs doc_id, resps, filter)")
        lines.append(obj)
    return parse_samples(path, lines)


def _not_a_result(path: Path, why: str) -> UserError:
    return UserError(f"{path}: not a result ({why}); pass lm-eval results JSON, --log_samples JSONL, or a "
                     f"CSV/Parquet table with columns {', '.join(REQUIRED)}, or leave the file out")
