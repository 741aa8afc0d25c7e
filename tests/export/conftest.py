"""Fixtures of the export tests: an edge-style tiny model and a dynamic bundle, built once per
session (``export_model`` and ``fp16_bundle`` live in tests/conftest.py: core tests use them too)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

EXPORT_FRAME = (150, 200)  # fixed camera frame of the dynamic bundle (network input 140x182)
CAPTION = "warehouse aisle"


@pytest.fixture(scope="session")
def edge_model():
    """A tiny shared-backbone (edge) model: the head reads the depth ViT's 32-d tokens."""
    from tr2m_edge.config import get_preset
    from tr2m_edge.checkpoint import random_head_checkpoint
    from tr2m_edge.model import build_model

    tiny = get_preset("tiny")
    cfg = tiny.replace(name="edge-tiny", image=None, head=dataclasses.replace(tiny.head, in_channels=32))
    return build_model(cfg, head_state=random_head_checkpoint(cfg).head).eval()


@pytest.fixture(scope="session")
def dynamic_bundle(tmp_path_factory, export_model) -> Path:
    """Dynamic batch/height/width graphs, fixed camera frame."""
    from tr2m_edge.export import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "dynamic"
    return export_bundle(export_model, out, dynamic=True, frame_size=EXPORT_FRAME, progress=False)
