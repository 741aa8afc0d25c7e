"""Training tests run PyTorch on one thread.

The CI machines have two cores shared with other jobs; with two OpenMP threads every
small kernel waits on a descheduled partner, which made the training tests up to five
times slower and very uneven. One thread keeps them fast and steady; the setting is
restored after each module so other layers' tests are unaffected.
"""

from __future__ import annotations

from typing import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
