"""The zoo's English text: Python's own documentation, which every Python installation carries.

Sources (both under the PSF licence, see zoo/README.md): `pydoc_data.topics` (the language
reference topics that `help()` shows) and the docstrings of the standard library's pure-Python
modules, read with `ast` so nothing is imported or executed. Documents are split into train and
held-out by a hash of their name, so the split does not move when the seed changes.
"""

from __future__ import annotations

import ast
import hashlib
import re
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

HELDOUT_PERCENT = 10
MIN_DOC_CHARS = 300
# Packages whose docstrings are mostly test scaffolding or GUI code; skipping them keeps the text English.
_SKIP_DIRS = {"test", "tests", "idlelib", "tkinter", "lib2to3", "site-packages", "turtledemo", "ensurepip"}


@dataclass(frozen=True)
class Document:
    name: str
    text: str


def _is_heldout(name: str) -> bool:
    digest = hashlib.sha256(name.encode()).digest()
    return digest[0] * 100 // 256 < HELDOUT_PERCENT


def _clean(text: str) -> str:
    # Collapse runs of blank lines and trailing spaces; keep line structure (it is part of the style).
    text = re.sub(r"[ \t]+\n", "\n", text.strip())
    return re.sub(r"\n{3,}", "\n\n", text)


def _pydoc_topics() -> list[Document]:
    from pydoc_data.topics import topics

    return [Document(f"topic:{k}", _clean(topics[k])) for k in sorted(topics)]


def _docstrings_of(path: Path, rel: str) -> list[Document]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return []
    docs = []
    nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
    for node in nodes:
        doc = ast.get_docstring(node)
        if doc and len(doc) >= MIN_DOC_CHARS:
            label = getattr(node, "name", "<module>")
            docs.append(Document(f"doc:{rel}:{label}:{node.lineno if hasattr(node, 'lineno') else 0}", _clean(doc)))
    return docs


def _stdlib_docstrings() -> list[Document]:
    root = Path(sysconfig.get_paths()["stdlib"])
    docs: list[Document] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if _SKIP_DIRS & set(rel.split("/")[:-1]) or rel.startswith("test"):
            continue
        docs.extend(_docstrings_of(path, rel))
    return docs


def english_documents() -> tuple[list[Document], list[Document]]:
    """(train, held-out) documents, each list in a fixed order."""
    train, heldout = _split_documents()
    return list(train), list(heldout)


@lru_cache(maxsize=1)
def _split_documents() -> tuple[tuple[Document, ...], tuple[Document, ...]]:
    docs = _pydoc_topics() + _stdlib_docstrings()  # reading ~1,400 files takes seconds: parse once
    return tuple(d for d in docs if not _is_heldout(d.name)), tuple(d for d in docs if _is_heldout(d.name))


def heldout_passages(heldout: list[Document], target_chars: int = 350, max_chars: int = 900) -> list[str]:
    """Cut held-out documents at paragraph breaks into passages of about target_chars."""
    passages = []
    for doc in heldout:
        current = ""
        for para in doc.text.split("\n\n"):
            current = f"{current}\n\n{para}" if current else para
            if len(current) >= target_chars:
                passages.append(current[:max_chars])
                current = ""
        if len(current) >= target_chars // 2:
            passages.append(current[:max_chars])
    return passages
