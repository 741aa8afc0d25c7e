"""Export-time patches that make the frozen encoders export correctly at any input size.

Two measured traps make ONNX exports of the ``transformers`` encoders silently wrong:

* DINOv2's ``interpolate_pos_encoding`` returns the stored embeddings unchanged when the
  grid is square and equal to the pretraining grid (37x37) and no TorchScript trace is
  running; a dynamo export at that size bakes the un-interpolated table and fails at
  every other size.
* The Depth Anything head calls ``int()`` on ``patch_height * patch_size`` before its
  final upsampling; a trace turns that into a constant, so a dynamic graph keeps
  producing the export size whatever the input (measured: 196x252 in, 140x182 out).

:func:`export_patches` replaces both, per module instance, for the duration of one
export and restores the originals afterwards:

* fixed size: the interpolated position embeddings are computed once in eager PyTorch
  (:func:`tr2m_edge.model.pos_embed.interpolate_position_table`, the original DINOv2
  convention) and baked into the graph as a constant (no bicubic Resize left for
  TensorRT, which has no bicubic-antialias equivalent);
* dynamic size: the interpolation always runs, with the original scale factors
  ``(g + 0.1) / 37`` computed in the graph from the input shape and given to one ONNX
  ``Resize`` as its ``scales`` (so ONNX Runtime maps coordinates exactly as PyTorch does
  with ``scale_factor``; ``size=`` would shift them), and the head upsamples to
  ``patch * 14`` without ``int()``. This needs the TorchScript exporter (the default).

A third trap is in the TR2M head itself: a TorchScript trace of ``nn.MultiheadAttention``
bakes the sequence length into its reshapes (measured: a dynamic head exported at 130
tokens fails at 132 with "cannot reshape {132,1,48} to {130,4,12}"). In dynamic exports
its self-attention calls are replaced by the same computation written with
shape-derived sizes (same weights, one ``Softmax`` op).
"""

from __future__ import annotations

import contextlib
import logging
import math
import types
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tr2m_edge.config import PATCH_SIZE
from tr2m_edge.errors import ExportError
from tr2m_edge.model.pos_embed import interpolate_position_table as interpolate_position_embeddings
from tr2m_edge.model.pos_embed import is_dinov2_embeddings

log = logging.getLogger(__name__)

_MISSING = object()


def _is_self_attention(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.MultiheadAttention)
        and not module.batch_first
        and module._qkv_same_embed_dim
        and module.in_proj_weight is not None
    )


def _self_attention_forward(original: Any) -> Any:
    """nn.MultiheadAttention.forward for unmasked self-attention, traceable at any length."""

    def forward(self: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: Any = None, need_weights: bool = True, attn_mask: Any = None,
                average_attn_weights: bool = True, is_causal: bool = False) -> tuple[torch.Tensor, None]:
        if key is not query or value is not query or key_padding_mask is not None or attn_mask is not None or is_causal:
            return original(query, key, value, key_padding_mask=key_padding_mask, need_weights=need_weights,
                            attn_mask=attn_mask, average_attn_weights=average_attn_weights, is_causal=is_causal)
        n, b, c = query.shape  # (sequence, batch, channels)
        heads = self.num_heads
        qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.reshape(n, b, 3, heads, c // heads).permute(2, 1, 3, 0, 4)  # (3, B, H, N, d)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scale = 1.0 / math.sqrt(self.head_dim)
        attn = torch.softmax(torch.matmul(q * scale, k.transpose(-2, -1)), dim=-1)
        out = torch.matmul(attn, v).permute(2, 0, 1, 3).reshape(n, b, c)
        return self.out_proj(out), None

    return forward


def _is_depth_anything_head(module: nn.Module) -> bool:
    return type(module).__name__ == "DepthAnythingDepthEstimationHead" and all(
        hasattr(module, a) for a in ("conv1", "conv2", "conv3", "activation1", "activation2", "patch_size")
    )


def _dynamic_pos_encoding(self: nn.Module, embeddings: torch.Tensor, height: Any, width: Any) -> torch.Tensor:
    return interpolate_position_embeddings(self.position_embeddings, height // PATCH_SIZE, width // PATCH_SIZE)


def _baked_pos_encoding(table: torch.Tensor) -> Any:
    def forward(self: nn.Module, embeddings: torch.Tensor, height: Any, width: Any) -> torch.Tensor:
        return table

    return forward


def _head_forward(self: nn.Module, hidden_states: list[torch.Tensor], patch_height: Any, patch_width: Any) -> torch.Tensor:
    """Depth Anything's output head with a symbolic (not int()-frozen) upsampling size."""
    x = self.conv1(hidden_states[self.head_in_index])
    x = F.interpolate(
        x, size=(patch_height * self.patch_size, patch_width * self.patch_size), mode="bilinear", align_corners=True
    )
    x = self.activation1(self.conv2(x))
    x = self.activation2(self.conv3(x)) * self.max_depth
    return x.squeeze(1)


@contextlib.contextmanager
def export_patches(module: nn.Module, input_size: tuple[int, int], dynamic: bool,
                   exporter: str = "torchscript") -> Iterator[int]:
    """Patch every ViT embedding, Depth Anything head and (dynamic only) self-attention
    ``nn.MultiheadAttention`` inside ``module`` for one export.

    Args:
        module: the wrapper about to be exported (searched recursively).
        input_size: (height, width) the graph is traced at, multiples of 14.
        dynamic: True for a graph that must work at other sizes too.
        exporter: ``torchscript`` or ``dynamo``.

    Yields:
        The number of modules patched. Originals are restored on exit, even on error.

    Raises:
        ExportError: a dynamic ViT graph with the dynamo exporter, which specialises the
            shape-derived position scales to the export size (measured: a graph traced
            at 140x182 kept its 10x13 table at 434x560).
    """
    if dynamic and exporter == "dynamo" and any(is_dinov2_embeddings(m) for m in module.modules()):
        raise ExportError(
            "Dynamic-size ViT graphs need the TorchScript exporter: the dynamo exporter fixes the original "
            "position-embedding scales to the export size. Use --exporter torchscript (the default), or drop --dynamic."
        )
    saved: list[tuple[nn.Module, str, Any]] = []

    def patch(mod: nn.Module, name: str, fn: Any) -> None:
        saved.append((mod, name, mod.__dict__.get(name, _MISSING)))
        setattr(mod, name, types.MethodType(fn, mod))

    try:
        for mod in module.modules():
            if is_dinov2_embeddings(mod):
                if dynamic:
                    patch(mod, "interpolate_pos_encoding", _dynamic_pos_encoding)
                else:
                    with torch.no_grad():
                        table = interpolate_position_embeddings(
                            mod.position_embeddings.detach(), input_size[0] // PATCH_SIZE, input_size[1] // PATCH_SIZE
                        ).clone()
                    patch(mod, "interpolate_pos_encoding", _baked_pos_encoding(table))
            elif _is_depth_anything_head(mod) and dynamic:
                patch(mod, "forward", _head_forward)
            elif _is_self_attention(mod) and dynamic:
                patch(mod, "forward", _self_attention_forward(mod.forward))
        log.debug("export patches applied to %d module(s) (dynamic=%s)", len(saved), dynamic)
        yield len(saved)
    finally:
        for mod, name, old in reversed(saved):
            if old is _MISSING:
                mod.__dict__.pop(name, None)
            else:
                setattr(mod, name, old)
