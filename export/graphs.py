"""The bundle's graph set: what gets exported for each component, with example inputs.

The modules are the model's own components (:meth:`tr2m_edge.model.tr2m.TR2M.components`)
and the tensor names and dynamic axes come from the contract
(:func:`tr2m_edge.contract.component_io`), so the graphs, the torch runner and the
runtime agree by construction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from tr2m_edge.contract import COMPONENTS, component_io, names

if TYPE_CHECKING:
    from tr2m_edge.export.onnx_export import GraphSpec
    from tr2m_edge.model.tr2m import TR2M


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
    from tr2m_edge.export.onnx_export import ANTIALIAS_OPSET, MIN_OPSET, GraphSpec
    from tr2m_edge.model.components import TextComponent

    cfg = model.cfg
    h, w = cfg.preprocess.input_size
    trace_frame = frame_size or default_frame_size((h, w))
    batch = 2 if dynamic else 1
    modules = model.components(frame_size, dynamic)
    if model.text_encoder.precision != "fp32":  # traced in fp32, converted to fp16 by the bundle writer
        modules["text_encoder"] = TextComponent(model.text_encoder.float32_copy())
    io = component_io(cfg, frame_size, dynamic)
    frame = example_frame(trace_frame)
    image = modules["preprocess"](frame).expand(batch, -1, -1, -1).contiguous()
    with torch.no_grad():
        rel, feats = model.encode_frame(image)
        text_emb = model.text_encoder(example_tokens).float()
        bias = model.head.scene_bias(text_emb[:1]).expand(batch, -1).contiguous()
    head_args: tuple[torch.Tensor, ...] = (feats, rel, bias)
    if frame_size is None:
        head_args += (torch.tensor(trace_frame, dtype=torch.int64),)
    args = {"preprocess": (frame,), "depth": (image,), "image_encoder": (image,), "head": head_args,
            "text_encoder": (example_tokens,), "scene_bias": (text_emb,)}
    specs = []
    for comp in (c for c in COMPONENTS if c in io):
        inputs, outputs = io[comp]
        axes = {t.name: t.dynamic_axes for t in (*inputs, *outputs) if t.dynamic_axes}
        vit = comp in ("depth", "image_encoder", "head")  # graphs traced at the network input size
        antialias = comp == "preprocess" and cfg.preprocess.resize == "antialias"
        specs.append(GraphSpec(comp, modules[comp], args[comp], names(inputs), names(outputs), dynamic_axes=axes,
                               input_size=(h, w) if vit else None, min_opset=ANTIALIAS_OPSET if antialias else MIN_OPSET))
    return specs
