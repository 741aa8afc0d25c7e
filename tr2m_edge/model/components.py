"""The contract's components as modules: one definition for the exported graphs, the torch
runner and the parity reference.

Each module's ``forward`` takes the inputs of its component in the order of
:func:`tr2m_edge.contract.component_io` and returns its outputs in that order (a tensor
when there is one, a tuple otherwise).
The exporter traces these modules into the bundle's ONNX graphs, the torch runner runs
them as they are, so the PyTorch backend computes exactly what the graphs compute.
:meth:`tr2m_edge.model.tr2m.TR2M.components` builds the set for one model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tr2m_edge.config import PATCH_SIZE, PreprocessConfig
from tr2m_edge.model.encoders import DepthEncoder, ImageEncoder, TextEncoder
from tr2m_edge.model.head import ScaleMapHead, metric_from_relative
from tr2m_edge.preprocess import resize_normalise


def clip_metric_depth(depth: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """The one clip of metric depth: NaN -> min_depth, then clamp to [min_depth, max_depth]
    (so +inf -> max and -inf -> min), written with ops every backend has (Where/IsNaN/Clip)."""
    depth = torch.where(torch.isnan(depth), torch.full_like(depth, min_depth), depth)
    return depth.clamp(min_depth, max_depth)


def postprocess_depth(
    depth: torch.Tensor, frame_size: tuple[int, int] | None, min_depth: float, max_depth: float
) -> torch.Tensor:
    """Resize (bilinear, align_corners=True) to the frame when its size differs, then clip."""
    if frame_size is not None and tuple(depth.shape[-2:]) != tuple(frame_size):
        depth = F.interpolate(depth, size=tuple(frame_size), mode="bilinear", align_corners=True)
    return clip_metric_depth(depth, min_depth, max_depth)


def _exporting() -> bool:
    """True inside a TorchScript trace or a torch.export/dynamo capture."""
    if torch.jit.is_tracing():
        return True
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and (compiler.is_compiling() or getattr(compiler, "is_exporting", lambda: False)()))


class PreprocessComponent(nn.Module):
    """frame uint8 (H, W, 3) RGB -> image (1, 3, h, w) normalised, always at the configured size,
    resized as ``cfg.resize`` says (bilinear align_corners, or antialiased bilinear).

    Mean and std are buffers: built per call they would be pageable host->device copies,
    which CUDA graph capture refuses. The resize is kept even at equal sizes (an exact
    identity) so that a traced graph keeps its Resize for frames of other sizes.
    """

    def __init__(self, cfg: PreprocessConfig) -> None:
        super().__init__()
        self.input_size = tuple(cfg.input_size)
        self.resize = cfg.resize
        self.register_buffer("mean", torch.tensor(cfg.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        return resize_normalise(frame.permute(2, 0, 1).unsqueeze(0), self.input_size, self.mean, self.std,
                                always_resize=True, mode=self.resize)


class DepthComponent(nn.Module):
    """image (B, 3, h, w) -> relative_depth (B, 1, h, w) [, image_tokens (B, N, C) when shared]."""

    def __init__(self, encoder: DepthEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        rel, tokens = self.encoder(image)
        return rel if tokens is None else (rel, tokens)


class ImageComponent(nn.Module):
    """image (B, 3, h, w) -> image_tokens (B, N, C): DINOv2 last-block patch tokens."""

    def __init__(self, encoder: ImageEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder(image)


class HeadComponent(nn.Module):
    """Per-frame head with the scene bias folded in, up to clipped metric depth at frame size.

    Inputs: image_tokens (B, N, C), relative_depth (B, 1, h, w), scene_bias (B or 1, C),
    and frame_hw int64 (2,) when the frame size is not fixed. Outputs: depth (B, 1, H, W)
    in metres (D_m = 1 / (A D_r + B) in fp32, bilinear align_corners=True resize to the
    frame, :func:`clip_metric_depth`), scale A and shift B (B, 1, h, w) in fp32.

    Args:
        head: the rescale head.
        min_depth / max_depth: the clip range, metres.
        frame_size: the fixed camera frame (H, W), or None (then ``frame_hw`` gives it).
        dynamic: the network input size varies: never skip the final resize when tracing.
    """

    def __init__(self, head: ScaleMapHead, min_depth: float, max_depth: float,
                 frame_size: tuple[int, int] | None, dynamic: bool = False) -> None:
        super().__init__()
        self.head = head
        self.dynamic = dynamic
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.frame_size = None if frame_size is None else (int(frame_size[0]), int(frame_size[1]))

    def _size(self, raw: torch.Tensor, frame_hw: torch.Tensor | None) -> tuple:
        if self.frame_size is not None:
            return self.frame_size
        if frame_hw is None:
            return tuple(raw.shape[-2:])
        if torch.jit.is_tracing():
            return frame_hw[0], frame_hw[1]
        if _exporting():
            fh, fw = frame_hw[0].item(), frame_hw[1].item()
            torch._check(fh >= 2)
            torch._check(fw >= 2)
            return fh, fw
        return int(frame_hw[0]), int(frame_hw[1])

    def forward(
        self,
        image_tokens: torch.Tensor,
        relative_depth: torch.Tensor,
        scene_bias: torch.Tensor,
        frame_hw: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        grid = (relative_depth.shape[-2] // PATCH_SIZE, relative_depth.shape[-1] // PATCH_SIZE)
        a, b = self.head.forward_frame(image_tokens, scene_bias, grid)[:2]
        raw = metric_from_relative(a, b, relative_depth)
        size = self._size(raw, frame_hw)
        if self.dynamic or self.frame_size is None or tuple(self.frame_size) != tuple(raw.shape[-2:]):
            raw = F.interpolate(raw, size=size, mode="bilinear", align_corners=True)
        return clip_metric_depth(raw, self.min_depth, self.max_depth), a.float(), b.float()


class TextComponent(nn.Module):
    """token_ids int64 (B, 77) -> text_embedding float32 (B, D)."""

    def __init__(self, encoder: TextEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.encoder(token_ids).float()


class SceneBiasComponent(nn.Module):
    """text_embedding (B, D) -> scene_bias (B, C): align_mlp + value/out projection."""

    def __init__(self, head: ScaleMapHead) -> None:
        super().__init__()
        self.head = head

    def forward(self, text_embedding: torch.Tensor) -> torch.Tensor:
        return self.head.scene_bias(text_embedding)
