"""The position tables inside exported graphs: baked into fixed-size graphs, computed from the
input shape in dynamic ones; both equal the original DINOv2 interpolation within 1e-6."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from tr2m_edge.export.onnx_export import GraphSpec, export_graph

SIZES = ((434, 560), (350, 1204), (518, 728))  # NYU / KITTI / SUN RGB-D eval inputs


@pytest.fixture(scope="module")
def embeddings(tiny_model):
    return {"image": tiny_model.image_encoder.model.embeddings,
            "depth": tiny_model.depth_encoder.model.backbone.embeddings}


class PositionTable(nn.Module):
    """image (1, 3, H, W) -> the embeddings module's position table for that input size."""

    def __init__(self, embeddings: nn.Module) -> None:
        super().__init__()
        self.embeddings = embeddings

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        table = self.embeddings.interpolate_pos_encoding(image, image.shape[-2], image.shape[-1])
        return table + 0.0 * image[:, :1, :1, 0]  # a graph output must depend on the input (exactly +0 here)


@pytest.mark.parametrize("which", ["image", "depth"])
def test_baked_and_dynamic_graph_tables_are_the_original_interpolation(tmp_path, embeddings, original_position_table,
                                                                       which):
    module = PositionTable(embeddings[which]).eval()
    table = embeddings[which].position_embeddings.detach()
    dyn_spec = GraphSpec("image_encoder", module, (torch.zeros(1, 3, 140, 182),), ("image",), ("table",),
                         dynamic_axes={"image": {2: "height", 3: "width"}, "table": {1: "tokens"}},
                         input_size=(140, 182))
    dynamic = ort.InferenceSession(str(export_graph(dyn_spec, tmp_path / "dyn.onnx", dynamic=True)),
                                   providers=["CPUExecutionProvider"])
    worst = {}
    for size in SIZES + ((518, 518),):  # 518x518: the stored 37x37 grid (original: the table itself)
        image = torch.zeros(1, 3, *size)
        want = original_position_table(table, *size).numpy() if size != (518, 518) else table.numpy()
        spec = GraphSpec("image_encoder", module, (image,), ("image",), ("table",), input_size=size)
        baked = ort.InferenceSession(str(export_graph(spec, tmp_path / f"baked{size[0]}.onnx")),
                                     providers=["CPUExecutionProvider"])
        got_baked = baked.run(None, {"image": image.numpy()})[0]
        got_dyn = dynamic.run(None, {"image": image.numpy()})[0]
        assert got_baked.shape == got_dyn.shape == want.shape
        assert np.abs(got_baked - want).max() <= 1e-6
        worst[size] = float(np.abs(got_dyn - want).max())
        assert worst[size] <= 1e-6, worst
