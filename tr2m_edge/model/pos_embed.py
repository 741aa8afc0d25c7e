"""ViT position embeddings interpolated as the original DINOv2 / Depth Anything code does.

The released TR2M runs the hub DINOv2 (image features) and Depth Anything V1's DINOv2
backbone; both resize the stored S x S position table (S = 37 for 518-pixel
pretraining) with::

    F.interpolate(table, scale_factor=((h + 0.1) / S, (w + 0.1) / S), mode="bicubic",
                  align_corners=False, antialias=False)          # h, w: the patch grid

and return the table unchanged when the grid is S x S. ``transformers`` instead passes
``size=(h, w)``: the same output shape, but the source coordinates of every row and
column shift (PyTorch maps them with the given scale, ``src = (dst + 0.5) / scale - 0.5``),
which moves DINOv2 tokens by about 2 % RMS. :func:`use_original_position_interpolation`
gives the ``transformers`` encoders the original behaviour; the exporter bakes the same
tables into fixed-size graphs, and a dynamic graph computes the same scales from its input
shape (one ONNX ``Resize`` with a computed ``scales`` input; :mod:`tr2m_edge.export.dynamic`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tr2m_edge.config import PATCH_SIZE

INTERPOLATE_OFFSET = 0.1  # the original code's offset: avoids a floor() landing one patch short


def table_side(table: torch.Tensor) -> int:
    """S of a (1, 1 + S*S, C) position table (class token first)."""
    side = math.isqrt(int(table.shape[1]) - 1)
    if side * side != int(table.shape[1]) - 1:
        raise ValueError(f"position table of {table.shape[1] - 1} patches is not a square grid")
    return side


def position_scales(grid_h: int, grid_w: int, side: int) -> tuple[float, float]:
    """The (rows, cols) scale factors the original code passes to ``F.interpolate``."""
    return (grid_h + INTERPOLATE_OFFSET) / side, (grid_w + INTERPOLATE_OFFSET) / side


def split_table(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 1 + S*S, C) -> class-token row (1, 1, C) and the patch grid (1, C, S, S) in float32."""
    side = table_side(table)
    grid = table[:, 1:].reshape(1, side, side, table.shape[-1]).permute(0, 3, 1, 2).float()
    return table[:, :1], grid


def join_table(cls_pos: torch.Tensor, grid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Inverse of :func:`split_table` for a resized (1, C, h, w) grid -> (1, 1 + h*w, C)."""
    dim = grid.shape[1]
    return torch.cat((cls_pos, grid.to(dtype).permute(0, 2, 3, 1).reshape(1, -1, dim)), dim=1)


class _ScaledBicubic(torch.autograd.Function):
    """Bicubic resize of a (1, C, S, S) grid by (rows, cols) scale factors given as a tensor.

    Eager: ``F.interpolate(scale_factor=...)``. TorchScript ONNX export: one ``Resize``
    (cubic, a = -0.75, half_pixel) whose ``scales`` input is computed in the graph from the
    input shape, so ONNX Runtime maps coordinates with the original scales at every size
    (``F.interpolate`` itself only takes Python floats, which a trace would freeze).
    """

    @staticmethod
    def forward(ctx: Any, grid: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        return F.interpolate(grid, scale_factor=(float(scales[0]), float(scales[1])), mode="bicubic",
                             align_corners=False)

    @staticmethod
    def symbolic(g: Any, grid: Any, scales: Any) -> Any:
        ones = g.op("Constant", value_t=torch.ones(2, dtype=torch.float32))
        full = g.op("Concat", ones, g.op("Cast", scales, to_i=1), axis_i=0)  # 1 = FLOAT
        roi = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
        return g.op("Resize", grid, roi, full, mode_s="cubic", cubic_coeff_a_f=-0.75,
                    coordinate_transformation_mode_s="half_pixel", nearest_mode_s="floor", exclude_outside_i=0)


def interpolate_position_table(table: torch.Tensor, grid_h: Any, grid_w: Any) -> torch.Tensor:
    """The position table for a ``grid_h`` x ``grid_w`` patch grid, as the original code computes it.

    Args:
        table: (1, 1 + S*S, C) stored embeddings, class token first.
        grid_h / grid_w: patch rows and columns: ints, or traced sizes (a TorchScript
            export with dynamic axes), from which the scales ``(g + 0.1) / S`` are then
            computed in the graph (1.0 on both axes at the S x S grid, where bicubic is an
            exact identity, as the original's early return).

    Returns:
        (1, 1 + grid_h*grid_w, C) in the table's dtype (bicubic computed in float32); the
        table itself when the grid is S x S.
    """
    side = table_side(table)
    cls_pos, grid = split_table(table)
    if isinstance(grid_h, torch.Tensor) or isinstance(grid_w, torch.Tensor):
        sizes = torch.stack([torch.as_tensor(grid_h), torch.as_tensor(grid_w)]).to(torch.float64)
        scales = torch.where((sizes == side).all(), torch.ones_like(sizes), (sizes + INTERPOLATE_OFFSET) / side)
        return join_table(cls_pos, _ScaledBicubic.apply(grid, scales), table.dtype)
    if (int(grid_h), int(grid_w)) == (side, side):
        return table
    grid = F.interpolate(grid, scale_factor=position_scales(int(grid_h), int(grid_w), side), mode="bicubic",
                         align_corners=False, antialias=False)
    if tuple(grid.shape[-2:]) != (int(grid_h), int(grid_w)):  # cannot happen with the 0.1 offset
        raise ValueError(f"interpolated grid {tuple(grid.shape[-2:])} != ({grid_h}, {grid_w})")
    return join_table(cls_pos, grid, table.dtype)


def _original_interpolate_pos_encoding(self: nn.Module, embeddings: torch.Tensor, height: Any,
                                       width: Any) -> torch.Tensor:
    """``Dinov2Embeddings.interpolate_pos_encoding`` with the original scale-factor convention."""
    return interpolate_position_table(self.position_embeddings, height // PATCH_SIZE, width // PATCH_SIZE)


def is_dinov2_embeddings(module: nn.Module) -> bool:
    """A ``transformers`` DINOv2 embeddings module (also Depth Anything's backbone)."""
    return (
        hasattr(module, "interpolate_pos_encoding")
        and isinstance(getattr(module, "position_embeddings", None), torch.Tensor)
        and hasattr(module, "patch_embeddings")
    )


_ORIGINAL_CLASSES: dict[type, type] = {}


def use_original_position_interpolation(model: nn.Module) -> int:
    """Make every DINOv2 embeddings module inside ``model`` interpolate as the original code.

    Each such module's class is swapped for a subclass whose ``interpolate_pos_encoding``
    is :func:`interpolate_position_table` (weights, state-dict keys and the instance's own
    attributes are untouched, so export-time per-instance patches still apply on top).

    Returns:
        The number of modules switched (0 when already switched).
    """
    count = 0
    for mod in model.modules():
        cls = type(mod)
        if not is_dinov2_embeddings(mod) or getattr(cls, "original_position_interpolation", False):
            continue
        if cls not in _ORIGINAL_CLASSES:
            _ORIGINAL_CLASSES[cls] = type(cls.__name__, (cls,), {
                "__doc__": f"{cls.__name__} with the original DINOv2 position interpolation (scale_factor, +0.1).",
                "__module__": __name__,
                "interpolate_pos_encoding": _original_interpolate_pos_encoding,
                "original_position_interpolation": True,
            })
        mod.__class__ = _ORIGINAL_CLASSES[cls]
        count += 1
    return count
