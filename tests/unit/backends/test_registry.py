"""The backend registry: explicit names, and a typo answered with the closest one."""

from __future__ import annotations

import pytest

from harness.backends.registry import BACKENDS, make_lm
from harness.config import BACKENDS as SWEEP_BACKENDS
from harness.errors import UserError


def test_the_sweep_and_the_registry_know_the_same_backends():
    assert set(BACKENDS) == set(SWEEP_BACKENDS)


def test_an_unknown_backend_names_the_closest():
    with pytest.raises(UserError, match="unknown backend 'fats'; did you mean 'fast'"):
        make_lm("fats", None, None, "cpu", 1)
