"""Graph I/O names and shapes shared by the exporter's graphs and the runtime's stages.

Every backend runs the same per-frame components with the same named tensors::

    preprocess     frame uint8 (H, W, 3) RGB            -> image float32 (1, 3, h, w)
    depth          image                                -> relative_depth (B, 1, h, w)
                                                           [+ image_tokens (B, N, C): edge preset]
    image_encoder  image                                -> image_tokens (B, N, C)   (absent for edge)
    head           image_tokens, relative_depth, scene_bias (B, C) [+ frame_hw int64 (2,)]
                                                        -> depth (B, 1, H, W) metres, clipped;
                                                           scale, shift (B, 1, h, w)
    text_encoder   token_ids int64 (B, 77)              -> text_embedding
    scene_bias     text_embedding                       -> scene_bias

``frame_hw`` exists only in bundles exported without a fixed frame size.
"""

from __future__ import annotations

from typing import Sequence

from tr2m_edge.config import PATCH_SIZE, ModelConfig
from tr2m_edge.errors import BundleError
from tr2m_edge.runtime.runners.base import TensorMeta

FRAME, IMAGE, RELATIVE, TOKENS = "frame", "image", "relative_depth", "image_tokens"
BIAS, FRAME_HW, DEPTH, SCALE, SHIFT = "scene_bias", "frame_hw", "depth", "scale", "shift"
FRAME_COMPONENTS = ("preprocess", "depth", "image_encoder", "head")


def token_width(cfg: ModelConfig) -> int:
    """Channels C of the image tokens the head consumes."""
    return cfg.head.in_channels


def component_io(
    cfg: ModelConfig, frame_size: tuple[int, int] | None
) -> dict[str, tuple[list[TensorMeta], list[TensorMeta]]]:
    """Expected (inputs, outputs) of each per-frame component for a config and frame size.

    Dynamic dimensions are ``None``: the frame size when ``frame_size`` is None.
    """
    h, w = cfg.preprocess.input_size
    n = (h // PATCH_SIZE) * (w // PATCH_SIZE)
    c = token_width(cfg)
    fh, fw = frame_size if frame_size is not None else (None, None)
    image = TensorMeta(IMAGE, "float32", (1, 3, h, w))
    rel = TensorMeta(RELATIVE, "float32", (1, 1, h, w))
    tokens = TensorMeta(TOKENS, "float32", (1, n, c))
    head_in = [tokens, rel, TensorMeta(BIAS, "float32", (1, c))]
    if frame_size is None:
        head_in.append(TensorMeta(FRAME_HW, "int64", (2,)))
    io = {
        "preprocess": ([TensorMeta(FRAME, "uint8", (fh, fw, 3))], [image]),
        "depth": ([image], [rel] + ([tokens] if cfg.shared_backbone else [])),
        "head": (head_in, [TensorMeta(DEPTH, "float32", (1, 1, fh, fw)),
                           TensorMeta(SCALE, "float32", (1, 1, h, w)), TensorMeta(SHIFT, "float32", (1, 1, h, w))]),
    }
    if not cfg.shared_backbone:
        io["image_encoder"] = ([image], [tokens])
    return io


def check_names(component: str, kind: str, have: Sequence[str], want: Sequence[str], where: str) -> None:
    """BundleError when a graph lacks a tensor name the runtime relies on."""
    missing = [n for n in want if n not in have]
    if missing:
        raise BundleError(
            f"{where}: the {component} graph has {kind} {sorted(have)}, but the runtime needs "
            f"{sorted(want)} (missing {missing}). The bundle was written by an incompatible exporter; re-export it."
        )
