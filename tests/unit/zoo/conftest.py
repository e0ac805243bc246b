"""Training tests compare weights bit for bit: one torch thread makes float sums run in one order."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
