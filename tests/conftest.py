"""Shared fixtures: everything runs on the CPU with the tiny preset (random weights)."""

from __future__ import annotations

import pytest
import torch

from tr2m_edge.config import get_preset


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_cfg():
    return get_preset("tiny")


@pytest.fixture(scope="session")
def tiny_model(tiny_cfg):
    from tr2m_edge.model import build_model

    torch.manual_seed(0)
    return build_model(tiny_cfg)
