"""Position embeddings as the original DINOv2 / Depth Anything code interpolates them (torch path;
the exported graphs: tests/export/test_position_tables.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tr2m_edge.model.pos_embed import interpolate_position_table

SIZES = ((434, 560), (350, 1204), (518, 728))  # NYU / KITTI / SUN RGB-D eval inputs


def transformers_size(table: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """What transformers' Dinov2Embeddings computes (size=, not scale_factor=)."""
    grid = table[:, 1:].reshape(1, 37, 37, -1).permute(0, 3, 1, 2).float()
    out = F.interpolate(grid, size=(h // 14, w // 14), mode="bicubic", align_corners=False)
    return torch.cat((table[:, :1], out.permute(0, 2, 3, 1).reshape(1, -1, table.shape[-1])), dim=1)


@pytest.fixture(scope="module")
def embeddings(tiny_model):
    """The DINOv2 image encoder's and the Depth Anything backbone's embeddings modules."""
    return {"image": tiny_model.image_encoder.model.embeddings,
            "depth": tiny_model.depth_encoder.model.backbone.embeddings}


@pytest.mark.parametrize("which", ["image", "depth"])
@pytest.mark.parametrize("size", SIZES)
def test_torch_path_table_is_the_original_interpolation(embeddings, original_position_table, which, size):
    emb = embeddings[which]
    table = emb.position_embeddings.detach()
    with torch.no_grad():
        got = emb.interpolate_pos_encoding(torch.zeros(1, 1, table.shape[-1]), *size)
    want = original_position_table(table, *size)
    assert got.shape == (1, 1 + (size[0] // 14) * (size[1] // 14), table.shape[-1])
    assert (got - want).abs().max() <= 1e-6
    # transformers' size= convention is measurably different: the fix is not a no-op
    assert (transformers_size(table, *size) - want).abs().max() > 1e-3


def test_stored_grid_returns_the_table_unchanged(embeddings):
    table = embeddings["image"].position_embeddings.detach()
    assert interpolate_position_table(table, 37, 37) is table
