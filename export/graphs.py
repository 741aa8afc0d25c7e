"""One ``nn.Module`` per bundle component, taking and giving the bundle's named tensors.

Each wrapper is what gets exported: its ``forward`` arguments are the graph inputs and its
results the graph outputs, in the order of :data:`GRAPH_IO`. The names are the contract
with the runtime (``tr2m_edge.runtime``), so they live here once.

==============  ===========================================  ===============================
component       inputs                                       outputs
==============  ===========================================  ===============================
preprocess      frame uint8 (H, W, 3) RGB                    image float32 (1, 3, h, w)
depth           image (B, 3, h, w)                           relative_depth (B, 1, h, w)
                                                             [+ image_tokens (B, N, C), edge]
image_encoder   image (B, 3, h, w)                           image_tokens (B, N, C)
head            image_tokens, relative_depth,                depth (B, 1, H, W) metres,
                scene_bias (B, C) [, frame_hw int64 (2,)]    scale, shift (B, 1, h, w)
text_encoder    token_ids int64 (B, 77)                      text_embedding (B, D)
scene_bias      text_embedding (B, D)                        scene_bias (B, C)
==============  ===========================================  ===============================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from tr2m_edge.config import PATCH_SIZE, ModelConfig
from tr2m_edge.model.encoders import DepthEncoder, ImageEncoder, TextEncoder
from tr2m_edge.model.frame import FramePreprocessor
from tr2m_edge.model.head import ScaleMapHead, metric_from_relative

if TYPE_CHECKING:
    from tr2m_edge.export.onnx_export import GraphSpec
    from tr2m_edge.model.tr2m import TR2M

GRAPH_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "preprocess": (("frame",), ("image",)),
    "depth": (("image",), ("relative_depth",)),
    "depth_shared": (("image",), ("relative_depth", "image_tokens")),
    "image_encoder": (("image",), ("image_tokens",)),
    "head": (("image_tokens", "relative_depth", "scene_bias"), ("depth", "scale", "shift")),
    "head_dynamic_frame": (("image_tokens", "relative_depth", "scene_bias", "frame_hw"), ("depth", "scale", "shift")),
    "text_encoder": (("token_ids",), ("text_embedding",)),
    "scene_bias": (("text_embedding",), ("scene_bias",)),
}


def graph_io(component: str, cfg: ModelConfig, frame_size: tuple[int, int] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Input and output names of one component for this model and frame-size mode."""
    if component == "depth" and cfg.shared_backbone:
        return GRAPH_IO["depth_shared"]
    if component == "head" and frame_size is None:
        return GRAPH_IO["head_dynamic_frame"]
    return GRAPH_IO[component]


def _exporting() -> bool:
    """True inside a TorchScript trace or a torch.export/dynamo capture."""
    if torch.jit.is_tracing():
        return True
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and (compiler.is_compiling() or getattr(compiler, "is_exporting", lambda: False)()))


def clip_metric_depth(depth: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """NaN -> min_depth, then clamp to [min_depth, max_depth] (so +inf -> max, -inf -> min).

    Same result as :func:`tr2m_edge.model.tr2m.postprocess_depth`'s ``nan_to_num`` + clamp,
    written with ops every backend has (Where/IsNaN/Clip).
    """
    depth = torch.where(torch.isnan(depth), torch.full_like(depth, min_depth), depth)
    return depth.clamp(min_depth, max_depth)


PreprocessGraph = FramePreprocessor  # frame uint8 (H, W, 3) -> image (1, 3, h, w); always the configured size


class DepthGraph(nn.Module):
    """image (B, 3, h, w) -> relative_depth (B, 1, h, w) [, image_tokens (B, N, C) when shared]."""

    def __init__(self, encoder: DepthEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        rel, tokens = self.encoder(image)
        return rel if tokens is None else (rel, tokens)


class ImageEncoderGraph(nn.Module):
    """image (B, 3, h, w) -> image_tokens (B, N, C): DINOv2 last-block patch tokens."""

    def __init__(self, encoder: ImageEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder(image)


class HeadGraph(nn.Module):
    """Per-frame head with the scene bias folded in, up to clipped metric depth at frame size.

    Inputs: image_tokens (B, N, C), relative_depth (B, 1, h, w), scene_bias (B or 1, C),
    and frame_hw int64 (2,) when the frame size is dynamic. Outputs: depth (B, 1, H, W) in
    metres (D_m = 1 / (A D_r + B) in fp32, bilinear align_corners=True resize to the
    frame, NaN -> min, clamp to the depth range), scale A and shift B (B, 1, h, w).
    """

    def __init__(
        self, head: ScaleMapHead, min_depth: float, max_depth: float, frame_size: tuple[int, int] | None,
        dynamic: bool = False,
    ) -> None:
        super().__init__()
        self.head = head
        self.dynamic = dynamic  # network input size varies: never skip the final resize
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.frame_size = None if frame_size is None else (int(frame_size[0]), int(frame_size[1]))

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
        if self.frame_size is not None:
            size: tuple = self.frame_size
        elif frame_hw is None:
            size = tuple(raw.shape[-2:])
        elif torch.jit.is_tracing():
            size = (frame_hw[0], frame_hw[1])
        elif _exporting():
            fh, fw = frame_hw[0].item(), frame_hw[1].item()
            torch._check(fh >= 2)
            torch._check(fw >= 2)
            size = (fh, fw)
        else:
            size = (int(frame_hw[0]), int(frame_hw[1]))
        if self.dynamic or self.frame_size is None or tuple(self.frame_size) != tuple(raw.shape[-2:]):
            raw = F.interpolate(raw, size=size, mode="bilinear", align_corners=True)
        return clip_metric_depth(raw, self.min_depth, self.max_depth), a, b


class TextEncoderGraph(nn.Module):
    """token_ids int64 (B, 77) -> text_embedding float32 (B, D)."""

    def __init__(self, encoder: TextEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.encoder(token_ids).float()


class SceneBiasGraph(nn.Module):
    """text_embedding (B, D) -> scene_bias (B, C): align_mlp + value/out projection."""

    def __init__(self, head: ScaleMapHead) -> None:
        super().__init__()
        self.head = head

    def forward(self, text_embedding: torch.Tensor) -> torch.Tensor:
        return self.head.scene_bias(text_embedding)


# ------------------------------------------------------------------ export specs

def example_frame(size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """A deterministic camera-like uint8 RGB frame (H, W, 3): smooth gradients plus noise."""
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    yy = torch.linspace(0, 1, h).view(h, 1, 1)
    xx = torch.linspace(0, 1, w).view(1, w, 1)
    base = torch.cat([yy.expand(h, w, 1), xx.expand(h, w, 1), (0.5 * (yy + xx)).expand(h, w, 1)], dim=2)
    noise = torch.rand(h, w, 3, generator=gen) * 0.3
    return ((base * 0.7 + noise) * 255).clamp(0, 255).to(torch.uint8)


def default_frame_size(input_size: tuple[int, int]) -> tuple[int, int]:
    """A camera frame that is NOT the network size (434x560 -> 480x640), used to trace
    and check graphs whose frame size is dynamic."""
    return round(input_size[0] * 480 / 434), round(input_size[1] * 640 / 560)


def graph_specs(
    model: "TR2M",
    *,
    frame_size: tuple[int, int] | None,
    dynamic: bool,
    example_tokens: torch.Tensor,
) -> list["GraphSpec"]:
    """The export specs of every component of ``model`` (the bundle's graph set).

    Args:
        model: the TR2M model (encoders + head), eval mode.
        frame_size: fixed camera frame (H, W), or None for a dynamic frame size.
        dynamic: batch/height/width of the network graphs stay symbolic.
        example_tokens: (2, 77) int64 token ids to trace the text encoder with.

    Returns:
        Specs in bundle order: preprocess, depth, [image_encoder], head, text_encoder,
        scene_bias. Example inputs are real intermediate values (head inputs come from
        running the encoders on the example image), batch 2 where the batch is dynamic
        (torch.export specialises a batch of 1).
    """
    from tr2m_edge.export.onnx_export import GraphSpec

    cfg = model.cfg
    h, w = cfg.preprocess.input_size
    trace_frame = frame_size or default_frame_size((h, w))
    batch = 2 if dynamic else 1
    net_axes = {0: "batch", 2: "height", 3: "width"} if dynamic else {}
    tok_axes = {0: "batch", 1: "tokens"} if dynamic else {}
    frame = example_frame(trace_frame)
    image = PreprocessGraph(cfg.preprocess)(frame).expand(batch, -1, -1, -1).contiguous()
    with torch.no_grad():
        rel, feats = model.encode_frame(image)
        text_emb = model.text_encoder(example_tokens).float()
        bias = model.head.scene_bias(text_emb[:1]).expand(batch, -1).contiguous()

    specs = [GraphSpec(
        "preprocess", PreprocessGraph(cfg.preprocess), (frame,), *graph_io("preprocess", cfg, frame_size),
        dynamic_axes={} if frame_size else {"frame": {0: "frame_height", 1: "frame_width"}},
    )]
    depth_in, depth_out = graph_io("depth", cfg, frame_size)
    depth_axes = {"image": net_axes, "relative_depth": net_axes}
    if cfg.shared_backbone:
        depth_axes["image_tokens"] = tok_axes
    specs.append(GraphSpec(
        "depth", DepthGraph(model.depth_encoder), (image,), depth_in, depth_out,
        dynamic_axes={k: v for k, v in depth_axes.items() if v}, input_size=(h, w),
    ))
    if model.image_encoder is not None:
        specs.append(GraphSpec(
            "image_encoder", ImageEncoderGraph(model.image_encoder), (image,), *graph_io("image_encoder", cfg, frame_size),
            dynamic_axes={k: v for k, v in {"image": net_axes, "image_tokens": tok_axes}.items() if v},
            input_size=(h, w),
        ))
    head_in, head_out = graph_io("head", cfg, frame_size)
    head_args: tuple[torch.Tensor, ...] = (feats, rel, bias)
    depth_axes_out: dict[int, str] = {0: "batch"} if dynamic else {}
    if frame_size is None:
        head_args += (torch.tensor(trace_frame, dtype=torch.int64),)
        depth_axes_out.update({2: "frame_height", 3: "frame_width"})
    head_axes = {
        "image_tokens": tok_axes, "relative_depth": net_axes, "scene_bias": {0: "bias_batch"} if dynamic else {},
        "depth": depth_axes_out, "scale": net_axes, "shift": net_axes,
    }
    specs.append(GraphSpec(
        "head", HeadGraph(model.head, cfg.min_depth, cfg.max_depth, frame_size, dynamic), head_args, head_in, head_out,
        dynamic_axes={k: v for k, v in head_axes.items() if v}, input_size=(h, w),
    ))
    specs.append(GraphSpec(
        "text_encoder", TextEncoderGraph(model.text_encoder), (example_tokens,), *graph_io("text_encoder", cfg, frame_size),
        dynamic_axes={"token_ids": {0: "batch"}, "text_embedding": {0: "batch"}},
    ))
    specs.append(GraphSpec(
        "scene_bias", SceneBiasGraph(model.head), (text_emb,), *graph_io("scene_bias", cfg, frame_size),
        dynamic_axes={"text_embedding": {0: "batch"}, "scene_bias": {0: "batch"}},
    ))
    return specs
