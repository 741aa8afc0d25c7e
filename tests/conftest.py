"""Shared fixtures: everything runs on the CPU with the tiny preset (random weights).

``export_model`` is ``build_model`` on a :func:`random_head_checkpoint`: a tiny TR2M whose
random encoders are seeded by their specs and whose random Depth Anything is calibrated
(D_r of a few units, not 1e-8), with a head that puts metric depth mid-range, so parity
checks compare real, unclipped depth maps. ``fp16_bundle`` is exported from it once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tr2m_edge.config import get_preset

CAPTION = "warehouse aisle"  # the caption fp16_bundle pre-caches


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _hub_mode(monkeypatch):
    """``--offline`` (run in process by CLI tests) switches the whole process offline: every test
    gets the hub settings back as they were."""
    import os

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT"):
        if var in os.environ:
            monkeypatch.setenv(var, os.environ[var])
        else:
            monkeypatch.delenv(var, raising=False)
    try:
        import huggingface_hub.constants as constants

        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover
        pass


@pytest.fixture(scope="session", autouse=True)
def _user_cache(tmp_path_factory):
    """The tests' user cache (new captions, ONNX Runtime TensorRT engines) in a temp folder, never ~/.cache.

    Set in the environment, so subprocesses (CLI runs) inherit it.
    """
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="session")
def tiny_cfg():
    return get_preset("tiny")


@pytest.fixture(scope="session")
def tiny_model(tiny_cfg):
    from tr2m_edge.model import build_model

    torch.manual_seed(0)
    return build_model(tiny_cfg)


@pytest.fixture(scope="session")
def export_model():
    from tr2m_edge.config import get_preset
    from tr2m_edge.checkpoint import random_head_checkpoint
    from tr2m_edge.model import build_model

    cfg = get_preset("tiny")
    return build_model(cfg, head_state=random_head_checkpoint(cfg).head).eval()


@pytest.fixture(scope="session")
def fp16_bundle(tmp_path_factory, export_model) -> Path:
    """fp32 + fp16 graphs, dynamic frame size (head takes frame_hw), one cached scene."""
    from tr2m_edge.export import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "fp16"
    return export_bundle(export_model, out, fp16=True, scenes=[CAPTION], progress=False)


@pytest.fixture(scope="session")
def run_blocked():
    """Run Python code in a fresh interpreter in which some modules cannot be imported.

    ``run_blocked(code, blocked=("torch", "open_clip"))`` returns the code's stdout and
    fails the test (showing stderr) when it exits non-zero.
    """

    def run(code: str, blocked: tuple[str, ...] = ("torch", "open_clip"), timeout: float = 120) -> str:
        block = "".join(f"sys.modules[{name!r}] = None; " for name in blocked)
        out = subprocess.run([sys.executable, "-c", f"import sys; {block}\n{code}"], capture_output=True, text=True,
                             timeout=timeout)
        assert out.returncode == 0, out.stderr
        return out.stdout

    return run


@pytest.fixture(scope="session")
def original_position_table():
    """The original DINOv2 position interpolation written out from its definition (not the
    project's code): ``f(table (1, 1 + 37*37, C), H, W) -> (1, 1 + (H/14)(W/14), C)``."""
    import torch.nn.functional as F

    def interpolate(table: torch.Tensor, h: int, w: int) -> torch.Tensor:
        side = 37
        grid = table[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
        out = F.interpolate(grid, scale_factor=((h / 14 + 0.1) / side, (w / 14 + 0.1) / side), mode="bicubic",
                            align_corners=False, antialias=False)
        return torch.cat((table[:, :1], out.permute(0, 2, 3, 1).reshape(1, -1, table.shape[-1])), dim=1)

    return interpolate


@pytest.fixture()
def trt_device():
    """This machine's GPU + TensorRT (:func:`tr2m_edge.system.engine_target`); skips the test without them."""
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (it needs an NVIDIA GPU machine)")
    from tr2m_edge.system import engine_target

    device = engine_target()
    if device is None:
        pytest.skip("no CUDA GPU visible")
    return device
