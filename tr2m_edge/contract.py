"""The per-frame contract: every graph's tensor names, dtypes and shapes, written once.

The exporter names its ONNX graphs' tensors from here, the torch runner declares its
inputs and outputs from here, and the runtime checks bundles against it, so the PyTorch
backend and the exported graphs cannot drift apart::

    component      inputs                                      outputs
    preprocess     frame uint8 (H, W, 3) RGB                   image float32 (1, 3, h, w)
    depth          image (B, 3, h, w)                          relative_depth (B, 1, h, w)
                                                               [+ image_tokens (B, N, C): shared backbone]
    image_encoder  image (B, 3, h, w)                          image_tokens (B, N, C)   (absent for edge)
    head           image_tokens, relative_depth,               depth (B, 1, H, W) metres, clipped;
                   scene_bias (B, C) [+ frame_hw int64 (2,)]   scale, shift (B, 1, h, w)
    text_encoder   token_ids int64 (B, 77)                     text_embedding (B, D)
    scene_bias     text_embedding (B, D)                       scene_bias (B, C)

``frame_hw`` exists only when the frame size is not fixed. A dimension is an ``int`` when
fixed and a name (``"batch"``, ``"height"``, ``"frame_height"``, ...) when symbolic: the
same names become the ONNX graphs' dynamic axes and TensorRT's optimisation profile.

Imports no PyTorch: the runtime uses it to run bundles without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tr2m_edge.config import CONTEXT_LENGTH, PATCH_SIZE, ModelConfig
from tr2m_edge.errors import BundleError

FRAME, IMAGE, RELATIVE, TOKENS = "frame", "image", "relative_depth", "image_tokens"
BIAS, FRAME_HW, DEPTH, SCALE, SHIFT = "scene_bias", "frame_hw", "depth", "scale", "shift"
TOKEN_IDS, TEXT_EMBEDDING = "token_ids", "text_embedding"

FRAME_COMPONENTS = ("preprocess", "depth", "image_encoder", "head")  # run per frame
CAPTION_COMPONENTS = ("text_encoder", "scene_bias")  # run once per caption
COMPONENTS = FRAME_COMPONENTS + CAPTION_COMPONENTS

Dim = int | str | None


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype (numpy name, e.g. ``float32``) and shape of one graph input or output.

    A shape entry is an int for a fixed dimension; a name (or None) for a dynamic one.
    """

    name: str
    dtype: str
    shape: tuple[Dim, ...]

    def describe(self) -> str:
        dims = ", ".join(str(d) if isinstance(d, int) and d >= 0 else "?" for d in self.shape)
        return f"{self.name} {self.dtype} ({dims})"

    @property
    def dynamic_axes(self) -> dict[int, str]:
        """Axis index -> symbolic name, for the axes that are not fixed."""
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TensorSpec":
        return cls(name=str(d["name"]), dtype=str(d["dtype"]), shape=tuple(d["shape"]))


ComponentIO = tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]


def component_io(cfg: ModelConfig, frame_size: tuple[int, int] | None, dynamic: bool = False) -> dict[str, ComponentIO]:
    """(inputs, outputs) of every component of a model, in graph order.

    Args:
        cfg: the model config (input size, widths, shared backbone or not).
        frame_size: the fixed camera frame (H, W), or None when the frame size is dynamic
            (the head then takes ``frame_hw``).
        dynamic: batch, height and width of the network graphs are symbolic.

    Returns:
        component name -> (input specs, output specs); no ``image_encoder`` entry when the
        depth model's backbone provides the image tokens.
    """
    h, w = cfg.preprocess.input_size
    c, d = cfg.head.in_channels, cfg.head.text_dim
    batch: Dim = "batch" if dynamic else 1
    nh: Dim = "height" if dynamic else h
    nw: Dim = "width" if dynamic else w
    n: Dim = "tokens" if dynamic else (h // PATCH_SIZE) * (w // PATCH_SIZE)
    fh, fw = frame_size if frame_size is not None else ("frame_height", "frame_width")
    f32 = "float32"
    image = TensorSpec(IMAGE, f32, (batch, 3, nh, nw))
    rel = TensorSpec(RELATIVE, f32, (batch, 1, nh, nw))
    tokens = TensorSpec(TOKENS, f32, (batch, n, c))
    head_in = [tokens, rel, TensorSpec(BIAS, f32, ("bias_batch" if dynamic else 1, c))]
    if frame_size is None:
        head_in.append(TensorSpec(FRAME_HW, "int64", (2,)))
    io: dict[str, ComponentIO] = {
        "preprocess": ((TensorSpec(FRAME, "uint8", (fh, fw, 3)),), (TensorSpec(IMAGE, f32, (1, 3, h, w)),)),
        "depth": ((image,), (rel, tokens) if cfg.shared_backbone else (rel,)),
        "image_encoder": ((image,), (tokens,)),
        "head": (tuple(head_in), (TensorSpec(DEPTH, f32, (batch, 1, fh, fw)), TensorSpec(SCALE, f32, (batch, 1, nh, nw)),
                                  TensorSpec(SHIFT, f32, (batch, 1, nh, nw)))),
        "text_encoder": ((TensorSpec(TOKEN_IDS, "int64", ("batch", CONTEXT_LENGTH)),),
                         (TensorSpec(TEXT_EMBEDDING, f32, ("batch", d)),)),
        "scene_bias": ((TensorSpec(TEXT_EMBEDDING, f32, ("batch", d)),), (TensorSpec(BIAS, f32, ("batch", c)),)),
    }
    if cfg.shared_backbone:
        del io["image_encoder"]
    return io


def names(specs: Sequence[TensorSpec]) -> tuple[str, ...]:
    """The names of ``specs``, in order."""
    return tuple(s.name for s in specs)


def check_names(component: str, kind: str, have: Sequence[str], want: Sequence[str], where: str) -> None:
    """BundleError when a graph lacks a tensor name the runtime relies on."""
    missing = [n for n in want if n not in have]
    if missing:
        raise BundleError(
            f"{where}: the {component} graph has {kind} {sorted(have)}, but the runtime needs "
            f"{sorted(want)} (missing {missing}). The bundle was written by an incompatible exporter; re-export it."
        )
