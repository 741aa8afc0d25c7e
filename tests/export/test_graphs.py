"""The per-component wrappers: uint8 preprocess graph vs training preprocessing, head post-processing."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from tr2m_edge.config import PreprocessConfig
from tr2m_edge.contract import component_io, names
from tr2m_edge.model.components import HeadComponent, PreprocessComponent
from tr2m_edge.export.onnx_export import GraphSpec, export_graph
from tr2m_edge.model import postprocess_depth
from tr2m_edge.preprocess import preprocess_frame, preprocess_tensor


@pytest.mark.parametrize("fixed", [True, False], ids=["fixed-frame", "dynamic-frame"])
def test_uint8_preprocess_graph_equals_numpy_and_torch_preprocessing(tmp_path, fixed):
    cfg = PreprocessConfig(input_size=(140, 182))
    rng = np.random.default_rng(0)
    sizes = [(150, 200)] if fixed else [(150, 200), (97, 131), (140, 182), (480, 640)]
    example = torch.from_numpy(rng.integers(0, 256, (*sizes[0], 3), dtype=np.uint8))
    spec = GraphSpec("preprocess", PreprocessComponent(cfg), (example,), ("frame",), ("image",),
                     dynamic_axes={} if fixed else {"frame": {0: "frame_height", 1: "frame_width"}})
    path = export_graph(spec, tmp_path / "preprocess.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(uint8)"
    # ONNX Runtime and PyTorch compute sampling positions in float32, numpy in float64: they
    # differ by up to ~1e-4 px at 640 px, which on this worst-case noise image (up to 255 grey
    # levels per pixel) is a few hundredths of a grey level. Allow 0.05 grey levels (in
    # normalised units: 0.05 / 255 / std), and 1/20 of that on average.
    tol = 0.05 / 255 / min(cfg.std)
    for size in sizes:
        frame = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        got = sess.run(["image"], {"frame": frame})[0]
        want_np = preprocess_frame(frame, cfg)
        want_t = preprocess_tensor(torch.from_numpy(frame).permute(2, 0, 1)[None], cfg).numpy()
        assert got.shape == want_np.shape == (1, 3, 140, 182) and got.dtype == np.float32
        assert np.abs(got - want_np).max() < tol
        assert np.abs(got - want_t).max() < tol
        assert np.abs(got - want_np).mean() < tol / 20


def test_head_graph_post_processing_matches_the_model(export_model):
    """NaN -> min, negative/too large -> clipped, resized to the frame like postprocess_depth."""
    cfg = export_model.cfg
    graph = HeadComponent(export_model.head, cfg.min_depth, cfg.max_depth, frame_size=(150, 200)).eval()
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(1, 130, 48, generator=gen)
    rel = torch.rand(1, 1, 140, 182, generator=gen) * 5
    rel[0, 0, :10, :10] = float("nan")
    rel[0, 0, -10:, -10:] = -1e6  # negative depth -> min
    bias = torch.randn(1, 48, generator=gen) * 0.1
    with torch.no_grad():
        depth, a, b = graph(feats, rel, bias)
        raw = 1.0 / (a * rel + b)
        want = postprocess_depth(raw, (150, 200), cfg.min_depth, cfg.max_depth)
    assert torch.equal(depth, want)
    assert float(depth.min()) == pytest.approx(cfg.min_depth) and float(depth.max()) <= cfg.max_depth
    assert torch.isfinite(depth).all()


def graph_io(component, cfg, frame_size):
    inputs, outputs = component_io(cfg, frame_size)[component]
    return names(inputs), names(outputs)


def test_graph_io_names_follow_the_runtime_contract(export_model):
    cfg = export_model.cfg
    assert graph_io("head", cfg, None)[0] == ("image_tokens", "relative_depth", "scene_bias", "frame_hw")
    assert graph_io("head", cfg, (480, 640))[0] == ("image_tokens", "relative_depth", "scene_bias")
    assert graph_io("depth", cfg.replace(image=None), None)[1] == ("relative_depth", "image_tokens")
    assert graph_io("text_encoder", cfg, None) == (("token_ids",), ("text_embedding",))
    assert graph_io("scene_bias", cfg, None) == (("text_embedding",), ("scene_bias",))
