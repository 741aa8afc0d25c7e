"""Published encoder sizes: parameter counts per preset, and random stand-ins of real sizes.

Hub-hosted encoders are counted through the sizes of their published architectures
(``KNOWN_SIZES``), built on the meta device with the same model classes as the random test
encoders. :func:`random_encoder_config` swaps every hub encoder of a config for a random
one of the same size: exports, benchmarks and GPU checks of real-sized models, offline.
"""

from __future__ import annotations

import dataclasses

import torch

from tr2m_edge.config import EncoderSpec, ModelConfig
from tr2m_edge.errors import ConfigError
from tr2m_edge.model.encoders import build_depth_encoder, build_image_encoder, build_text_encoder
from tr2m_edge.model.head import count_parameters
from tr2m_edge.model.head import build_head

# (hidden_size, num_layers, num_heads) of the published models the presets point at.
KNOWN_SIZES: dict[str, tuple[int, int, int]] = {
    "LiheYoung/depth-anything-small-hf": (384, 12, 6),
    "depth-anything/Depth-Anything-V2-Small-hf": (384, 12, 6),
    "facebook/dinov2-large": (1024, 24, 16),
    "facebook/dinov2-base": (768, 12, 12),
    "facebook/dinov2-small": (384, 12, 6),
    "ViT-L-14": (768, 12, 12),
    "ViT-L-14-quickgelu": (768, 12, 12),
    "openai/clip-vit-large-patch14": (768, 12, 12),
}


def _as_random(spec: EncoderSpec) -> EncoderSpec | None:
    """The random stand-in of ``spec`` (itself if already random), None if its size is unknown."""
    if spec.is_random:
        return spec
    if min(spec.hidden_size, spec.num_layers, spec.num_heads) > 0:  # a weight file with its sizes
        return dataclasses.replace(spec, source=None, pretrained=None)
    sizes = KNOWN_SIZES.get(spec.source or "")
    if sizes is None:
        return None
    return dataclasses.replace(spec, source=None, pretrained=None, hidden_size=sizes[0], num_layers=sizes[1],
                               num_heads=sizes[2])


def random_encoder_config(cfg: ModelConfig) -> ModelConfig:
    """``cfg`` with every hub encoder replaced by a random one of its published size."""

    def swap(spec: EncoderSpec | None) -> EncoderSpec | None:
        if spec is None:
            return None
        out = _as_random(spec)
        if out is None:
            raise ConfigError(
                f"No known size for encoder '{spec.source}'; random encoders exist for: {', '.join(KNOWN_SIZES)}."
            )
        return out

    return cfg.replace(depth=swap(cfg.depth), image=swap(cfg.image), text=swap(cfg.text))


def parameter_counts(cfg: ModelConfig) -> dict[str, int | None]:
    """Parameters of each part (None where the architecture is not known offline)."""
    counts: dict[str, int | None] = {}
    with torch.device("meta"):
        counts["head (trainable)"] = count_parameters(build_head(cfg))
        depth = _as_random(cfg.depth)
        counts["depth"] = count_parameters(build_depth_encoder(depth)) if depth else None
        if cfg.image is None:
            counts["image"] = 0
        else:
            image = _as_random(cfg.image)
            counts["image"] = count_parameters(build_image_encoder(image)) if image else None
        text = _as_random(cfg.text)
        counts["text"] = count_parameters(build_text_encoder(text)) if text else None
    return counts
