"""The examples in harness.ingest's docstrings run (tests/unit/test_doctests.py covers the other pure packages)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import harness.ingest

MODULES = sorted(m.name for m in pkgutil.walk_packages(harness.ingest.__path__, "harness.ingest."))


def test_the_modules_are_found():
    assert "harness.ingest.families" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
