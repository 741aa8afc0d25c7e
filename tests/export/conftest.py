"""Fixtures of the export tests: tiny models with random weights, bundles built once per session.

The model is ``build_model`` on a :func:`random_head_checkpoint`: a tiny TR2M whose random
encoders are seeded by their specs and whose random Depth Anything is calibrated (D_r of a
few units, not 1e-8), with a head that puts metric depth mid-range, so parity checks
compare real, unclipped depth maps.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

EXPORT_FRAME = (150, 200)  # fixed camera frame of the dynamic bundle (network input 140x182)
CAPTION = "warehouse aisle"


@pytest.fixture(scope="session")
def export_model():
    from tr2m_edge.config import get_preset
    from tr2m_edge.export.bundle_writer import random_head_checkpoint
    from tr2m_edge.model import build_model

    cfg = get_preset("tiny")
    return build_model(cfg, head_state=random_head_checkpoint(cfg).head).eval()


@pytest.fixture(scope="session")
def edge_model():
    """A tiny shared-backbone (edge) model: the head reads the depth ViT's 32-d tokens."""
    from tr2m_edge.config import get_preset
    from tr2m_edge.export.bundle_writer import random_head_checkpoint
    from tr2m_edge.model import build_model

    tiny = get_preset("tiny")
    cfg = tiny.replace(name="edge-tiny", image=None, head=dataclasses.replace(tiny.head, in_channels=32))
    return build_model(cfg, head_state=random_head_checkpoint(cfg).head).eval()


@pytest.fixture(scope="session")
def fp16_bundle(tmp_path_factory, export_model) -> Path:
    """fp32 + fp16 graphs, dynamic frame size (head takes frame_hw), one cached scene."""
    from tr2m_edge.export import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "fp16"
    return export_bundle(export_model, out, fp16=True, scenes=[CAPTION], progress=False)


@pytest.fixture(scope="session")
def dynamic_bundle(tmp_path_factory, export_model) -> Path:
    """Dynamic batch/height/width graphs, fixed camera frame."""
    from tr2m_edge.export import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "dynamic"
    return export_bundle(export_model, out, dynamic=True, frame_size=EXPORT_FRAME, progress=False)
