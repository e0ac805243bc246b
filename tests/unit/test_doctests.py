"""The examples in the docstrings of the pure packages run, and say what the code does."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import harness

# Pure code only: importing these loads neither Ray nor torch, so their examples run anywhere.
PURE = ("harness.scheduling", "harness.analysis", "harness.results", "harness.plan",
        "harness.checkpoint", "harness.config", "harness.errors", "harness.backends.fast.pack")


def _modules() -> list[str]:
    names = []
    for name in PURE:
        module = importlib.import_module(name)
        names.append(name)
        if hasattr(module, "__path__"):
            names += [m.name for m in pkgutil.walk_packages(module.__path__, name + ".")]
    return sorted(set(names))


def test_pure_packages_are_found():
    assert "harness.scheduling.policy" in _modules() and harness.__doc__


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} fail"
