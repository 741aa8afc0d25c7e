"""export_graph: both exporters, contract checks, clear failures."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from tr2m_edge.errors import ExportError
from tr2m_edge.model.components import HeadComponent, SceneBiasComponent
from tr2m_edge.export.onnx_export import GraphSpec, check_exporter, export_graph, opset_of


def test_dynamo_exporter_gives_the_same_head(tmp_path, export_model):
    """The non-default exporter stays usable: the head (dynamic frame size) through dynamo."""
    cfg = export_model.cfg
    gen = torch.Generator().manual_seed(0)
    args = (torch.randn(2, 130, 48, generator=gen), torch.rand(2, 1, 140, 182, generator=gen) * 5,
            torch.randn(2, 48, generator=gen) * 0.1, torch.tensor([150, 200]))
    spec = GraphSpec("head", HeadComponent(export_model.head, cfg.min_depth, cfg.max_depth, None).eval(), args,
                     ("image_tokens", "relative_depth", "scene_bias", "frame_hw"), ("depth", "scale", "shift"),
                     dynamic_axes={"depth": {2: "frame_height", 3: "frame_width"}})
    path = export_graph(spec, tmp_path / "head.onnx", exporter="dynamo", opset=18)
    assert opset_of(path) >= 18
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    frame_hw = np.array([97, 131], dtype=np.int64)
    got = sess.run(None, {"image_tokens": args[0].numpy(), "relative_depth": args[1].numpy(),
                          "scene_bias": args[2].numpy(), "frame_hw": frame_hw})
    with torch.no_grad():
        want = spec.module(*args[:3], torch.from_numpy(frame_hw))
    assert got[0].shape == (2, 1, 97, 131)
    for g, w in zip(got, want):
        assert np.abs(g - w.numpy()).max() <= 1e-3 * np.abs(w.numpy()).max()


def test_contract_names_and_errors(tmp_path, export_model):
    spec = GraphSpec("scene_bias", SceneBiasComponent(export_model.head), (torch.randn(1, 64),),
                     ("text_embedding",), ("scene_bias",))
    path = export_graph(spec, tmp_path / "bias.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["text_embedding"]
    assert [o.name for o in sess.get_outputs()] == ["scene_bias"]
    assert opset_of(path) == 17

    with pytest.raises(ExportError, match="Unknown exporter 'tf'. Available: auto, torchscript, dynamo"):
        check_exporter("tf")
    with pytest.raises(ExportError, match="Opset 16 is too old: LayerNorm would be decomposed"):
        export_graph(spec, tmp_path / "old.onnx", opset=16)

    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("this module cannot run")

    broken = GraphSpec("depth", Broken(), (torch.randn(1, 3),), ("image",), ("relative_depth",))
    with pytest.raises(ExportError, match="Exporting 'depth' with the torchscript exporter failed: .*cannot run. "
                                          "Try --exporter dynamo"):
        export_graph(broken, tmp_path / "broken.onnx")
