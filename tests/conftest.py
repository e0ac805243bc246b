"""Session fixtures: a tokenizer, two tiny models and a task folder, built once per test session."""

from __future__ import annotations

import os

import pytest

# Ray binds to loopback only in tests (README, "Loopback"): never to the machine's interface address.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Nothing in the tests may reach a hub: no downloads, and hub ids are planned without asking it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests import tiny  # noqa: E402


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """Paths of two tiny models (different sizes) and of the tiny task folder."""
    root = tmp_path_factory.mktemp("tiny")
    tokenizer = tiny.build_tokenizer()
    small = tiny.build_model(root / "models" / "tiny-s", tokenizer, hidden=32, layers=1, seed=1)
    large = tiny.build_model(root / "models" / "tiny-l", tokenizer, hidden=64, layers=2, seed=2)
    tasks = tiny.build_tasks(root / "tasks")
    return {"root": root, "small": small, "large": large, "tasks": tasks}


@pytest.fixture(scope="session")
def s3():
    """A real S3 server (moto) on 127.0.0.1 for the session (tests/s3_server.py)."""
    from tests.s3_server import S3Server

    with S3Server() as server:
        yield server
