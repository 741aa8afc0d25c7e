"""Shared fixtures of the runtime tests (this folder is on sys.path for the helper modules).

One tiny bundle per session, exported from a random-head ``tiny`` checkpoint. The PyTorch
reference is ``build_model`` on that checkpoint: random encoders are rebuilt from their
specs' seeds (Depth Anything calibrated to realistic activations), so the reference and the
bundle hold the same weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rt_common import CAPTIONS, FRAME_SIZE  # noqa: F401  (shared with the test modules)


def make_checkpoint():
    """A random-head tiny checkpoint (``Checkpoint(config, build_head(cfg).state_dict())``,
    seeded) whose shift bias puts B at 4 / max_depth, so depth stays below the clip: with the
    raw random head most pixels sit at max_depth and a parity check would compare constants."""
    from tr2m_edge.config import get_preset
    from tr2m_edge.checkpoint import random_head_checkpoint

    return random_head_checkpoint(get_preset("tiny"), seed=0)


@pytest.fixture(scope="session")
def tiny_checkpoint():
    return make_checkpoint()


def _export_bundle():
    try:
        from tr2m_edge.export import export_bundle
    except ImportError:  # the package may not re-export it
        from tr2m_edge.export.bundle_writer import export_bundle
    return export_bundle


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_checkpoint) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "tiny"
    return Path(_export_bundle()(tiny_checkpoint, out, frame_size=FRAME_SIZE, scenes=CAPTIONS[:1], progress=False))


@pytest.fixture()
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    """A private copy of the tiny bundle (for tests that change, lock or build into it)."""
    import shutil

    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


@pytest.fixture(scope="session")
def ort_pipeline(tiny_bundle):
    from tr2m_edge.runtime import DepthPipeline

    with DepthPipeline.from_bundle(tiny_bundle, backend="ort-cpu") as pipe:
        pipe.set_scene(CAPTIONS[0])
        yield pipe


@pytest.fixture(scope="session")
def synthetic_frames():
    from tr2m_edge.synthetic import iter_scenes

    return [s.rgb for s in iter_scenes(8, size=FRAME_SIZE, seed=3)]


@pytest.fixture(scope="session")
def torch_reference(tiny_checkpoint):
    """The PyTorch reference pipeline over the model the bundle was exported from."""
    import torch

    from tr2m_edge.model import build_model
    from tr2m_edge.runtime import DepthPipeline

    torch.set_num_threads(1)  # 2 OpenMP threads on a shared 2-core box are ~10x slower
    model = build_model(tiny_checkpoint.config, tiny_checkpoint.head).eval()
    with DepthPipeline.from_model(model, frame_size=FRAME_SIZE) as pipe:
        pipe.set_scene(CAPTIONS[0])
        yield pipe
