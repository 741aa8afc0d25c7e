"""Multiply-accumulates per component at any input size (``tr2m-edge info --macs``, ``bench``).

Counted with PyTorch's own operator counter (``torch.utils.flop_counter.FlopCounterMode``:
matmuls, convolutions, attention; MACs = FLOPs / 2) on the meta device, so real-sized
models cost no memory and no weights are needed: hub encoders are stood in for by random
ones of their published sizes (:func:`tr2m_edge.model.summary.random_encoder_config`).
Per frame: preprocess, depth, image encoder (absent when the backbone is shared) and head;
per caption (not per frame): text encoder and scene bias.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from tr2m_edge.config import CONTEXT_LENGTH, ModelConfig
from tr2m_edge.contract import FRAME_COMPONENTS
from tr2m_edge.model.summary import random_encoder_config
from tr2m_edge.model.tr2m import build_model


@dataclass
class MacCount:
    """MACs of each component of one model at one input size."""

    preset: str
    input_size: tuple[int, int]
    per_frame: dict[str, int] = field(default_factory=dict)  # component -> MACs per frame
    per_caption: dict[str, int] = field(default_factory=dict)  # component -> MACs per new caption

    @property
    def frame_total(self) -> int:
        return sum(self.per_frame.values())

    @property
    def ratio_to_depth(self) -> float:
        """Per-frame MACs of the whole path over those of the relative-depth model alone."""
        return self.frame_total / self.per_frame["depth"]


def _macs(module: torch.nn.Module, *args: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*args)
    return int(counter.get_total_flops()) // 2


def count_macs(cfg: ModelConfig, input_size: tuple[int, int] | None = None) -> MacCount:
    """MACs per component of ``cfg`` at ``input_size`` (default: the config's), frame = input size.

    Raises:
        ConfigError: an encoder whose size is not known offline, or a bad input size.
    """
    cfg = random_encoder_config(cfg.replace(input_size=input_size) if input_size else cfg)
    h, w = cfg.preprocess.input_size
    with torch.device("meta"):
        model = build_model(cfg).eval()
        comps = model.components(frame_size=(h, w))
        frame = torch.empty(h, w, 3, dtype=torch.uint8)
        image = torch.empty(1, 3, h, w)
        rel, tokens = model.depth_encoder(image)
        if model.image_encoder is not None:
            tokens = model.image_encoder(image)
        bias = torch.empty(1, cfg.head.in_channels)
        ids = torch.zeros(1, CONTEXT_LENGTH, dtype=torch.int64)
        text = torch.empty(1, cfg.head.text_dim)
        args = {"preprocess": (frame,), "depth": (image,), "image_encoder": (image,), "head": (tokens, rel, bias)}
        count = MacCount(cfg.name, (h, w))
        for name in FRAME_COMPONENTS:
            if name in comps:
                count.per_frame[name] = _macs(comps[name], *args[name])
        count.per_caption["text_encoder"] = _macs(comps["text_encoder"], ids)
        count.per_caption["scene_bias"] = _macs(comps["scene_bias"], text)
    return count
