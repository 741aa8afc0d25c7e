"""Dynamic-size export patches: the measured trap, the fix, and clean restoration."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch

from tr2m_edge.export.dynamic import export_patches, interpolate_position_embeddings
from tr2m_edge.model.components import DepthComponent, ImageComponent
from tr2m_edge.export.onnx_export import GraphSpec, export_graph

AXES = {"image": {0: "batch", 2: "height", 3: "width"}, "relative_depth": {0: "batch", 2: "height", 3: "width"}}


def test_unpatched_dynamic_export_is_silently_wrong_and_the_patched_one_is_right(tmp_path, export_model):
    graph = DepthComponent(export_model.depth_encoder).eval()
    x = torch.randn(1, 3, 140, 182)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (x,), str(tmp_path / "raw.onnx"), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["relative_depth"], dynamic_axes=AXES)
    other = torch.randn(1, 3, 196, 252)
    raw = ort.InferenceSession(str(tmp_path / "raw.onnx"), providers=["CPUExecutionProvider"])
    assert raw.run(None, {"image": other.numpy()})[0].shape == (1, 1, 140, 182)  # the trap: stuck at export size

    spec = GraphSpec("depth", graph, (x,), ("image",), ("relative_depth",), dynamic_axes=AXES, input_size=(140, 182))
    export_graph(spec, tmp_path / "depth.onnx", dynamic=True)
    fixed = ort.InferenceSession(str(tmp_path / "depth.onnx"), providers=["CPUExecutionProvider"])
    got = fixed.run(None, {"image": other.numpy()})[0]
    with torch.no_grad():
        want = graph(other).numpy()
    assert got.shape == want.shape == (1, 1, 196, 252)
    assert np.abs(got - want).max() <= 1e-3 * np.abs(want).max()


def test_patches_are_restored_even_after_an_error(export_model):
    graph = ImageComponent(export_model.image_encoder)
    emb = export_model.image_encoder.model.embeddings
    assert "interpolate_pos_encoding" not in emb.__dict__
    try:
        with export_patches(graph, (140, 182), dynamic=True) as n:
            assert n == 1 and "interpolate_pos_encoding" in emb.__dict__
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert "interpolate_pos_encoding" not in emb.__dict__
    with export_patches(DepthComponent(export_model.depth_encoder), (140, 182), dynamic=True) as n:
        assert n == 2  # the backbone embeddings and the Depth Anything head
    assert "forward" not in export_model.depth_encoder.model.head.__dict__


def test_patched_encoders_compute_what_the_originals_compute(export_model):
    graph = ImageComponent(export_model.image_encoder).eval()
    for size in ((140, 182), (518, 518)):  # 518x518 is the 37x37 early-return case
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            want = graph(x)
            with export_patches(graph, size, dynamic=True):
                dyn = graph(x)
            with export_patches(graph, size, dynamic=False):
                baked = graph(x)
        assert torch.allclose(dyn, want, atol=1e-5) and torch.allclose(baked, want, atol=1e-5)


def test_fixed_export_bakes_the_position_embeddings(tmp_path, export_model):
    graph = ImageComponent(export_model.image_encoder).eval()
    x = torch.randn(1, 3, 140, 182)
    fixed = export_graph(GraphSpec("image_encoder", graph, (x,), ("image",), ("image_tokens",), input_size=(140, 182)),
                         tmp_path / "fixed.onnx")
    dyn = export_graph(GraphSpec("image_encoder", graph, (x,), ("image",), ("image_tokens",),
                                 dynamic_axes={"image": {2: "height", 3: "width"}}, input_size=(140, 182)),
                       tmp_path / "dyn.onnx", dynamic=True)

    def cubic_resizes(path):
        return [n for n in onnx.load(str(path)).graph.node if n.op_type == "Resize"
                and any(a.name == "mode" and a.s == b"cubic" for a in n.attribute)]

    assert cubic_resizes(fixed) == [] and len(cubic_resizes(dyn)) == 1


def test_interpolation_is_identity_at_the_stored_grid():
    table = torch.randn(1, 1 + 37 * 37, 8)
    assert torch.allclose(interpolate_position_embeddings(table, 37, 37), table, atol=1e-6)
    assert interpolate_position_embeddings(table, 10, 13).shape == (1, 1 + 130, 8)
