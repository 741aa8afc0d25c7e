"""TR2M: frozen relative depth + frozen image/text encoders + trainable rescale head.

Per frame:  image -> Depth Anything -> D_r;  image -> DINOv2 (or the depth backbone's own
tokens, ``edge``) -> F_I;  head(F_I, scene bias) -> A, B;  D_m = 1 / (A D_r + B), resized
to the frame and clipped to the configured depth range.
Per scene:  caption -> CLIP text -> embedding -> head.scene_bias -> bias (cached).
The same steps as separate modules (the bundle's graphs): :meth:`TR2M.components`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tr2m_edge.config import PATCH_SIZE, ModelConfig
from tr2m_edge.errors import ConfigError
from tr2m_edge.model.components import (
    DepthComponent,
    HeadComponent,
    ImageComponent,
    PreprocessComponent,
    SceneBiasComponent,
    TextComponent,
    postprocess_depth,
)
from tr2m_edge.model.encoders import (
    DepthEncoder,
    ImageEncoder,
    TextEncoder,
    build_depth_encoder,
    build_image_encoder,
    build_text_encoder,
    tokenize,
)
from tr2m_edge.model.head import ScaleMapHead, build_head, metric_from_relative


@dataclass
class DepthOutput:
    """Result of one forward pass; all maps (B, 1, H, W) float32."""

    depth: torch.Tensor  # metric depth in metres, at frame size, clipped
    scale: torch.Tensor  # A at network input size
    shift: torch.Tensor  # B at network input size
    relative: torch.Tensor  # D_r at network input size
    raw_depth: torch.Tensor  # 1 / (A D_r + B) at network input size, unclipped


class TR2M(nn.Module):
    """The whole model. Only ``head`` has trainable parameters."""

    def __init__(
        self,
        cfg: ModelConfig,
        depth: DepthEncoder,
        image: ImageEncoder | None,
        text: TextEncoder,
        head: ScaleMapHead,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.depth_encoder = depth
        self.image_encoder = image
        self.text_encoder = text
        self.head = head

    def with_input_size(self, input_size: tuple[int, int]) -> "TR2M":
        """The same parts (shared, not copied) under a config with another network input size, eval mode."""
        return self.with_config(self.cfg.replace(input_size=tuple(input_size)))

    def with_config(self, cfg: ModelConfig) -> "TR2M":
        """The same parts (shared, not copied) under ``cfg``, eval mode.

        ``cfg`` may change what the parts do not hold: input size, resize mode, depth range,
        and the text encoder's precision (the text tower is then a converted copy).
        """
        return TR2M(cfg, self.depth_encoder, self.image_encoder, self.text_encoder.at_precision(cfg.text.precision),
                    self.head).eval()

    def train(self, mode: bool = True) -> "TR2M":
        """Only the head switches mode; frozen encoders stay in eval."""
        self.training = mode
        self.head.train(mode)
        return self

    @torch.no_grad()
    def encode_frame(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen per-frame encoders: -> (D_r (B,1,H,W), F_I (B,N,C))."""
        rel, tokens = self.depth_encoder(pixel_values)
        feats = tokens if self.image_encoder is None else self.image_encoder(pixel_values)
        return rel, feats

    @torch.no_grad()
    def encode_text(self, captions: list[str] | torch.Tensor) -> torch.Tensor:
        """Captions (or token ids) -> text embeddings (B, text_dim)."""
        tokens = tokenize(captions) if isinstance(captions, list) else captions
        tokens = tokens.to(next(self.text_encoder.parameters()).device)
        return self.text_encoder(tokens).float()

    def scene_bias(self, text_emb: torch.Tensor) -> torch.Tensor:
        return self.head.scene_bias(text_emb)

    def components(self, frame_size: tuple[int, int] | None, dynamic: bool = False) -> dict[str, nn.Module]:
        """Every component of :mod:`tr2m_edge.contract` as a module over this model's parts.

        Args:
            frame_size: the fixed camera frame (H, W) the head resizes to, or None (the
                head then takes ``frame_hw``).
            dynamic: the network input size varies (export with dynamic axes).

        Returns:
            ``preprocess``, ``depth``, [``image_encoder``], ``head``, ``text_encoder``,
            ``scene_bias``: the modules the exporter traces and the torch runner runs.
        """
        cfg = self.cfg
        comps: dict[str, nn.Module] = {"preprocess": PreprocessComponent(cfg.preprocess),
                                       "depth": DepthComponent(self.depth_encoder)}
        if self.image_encoder is not None:
            comps["image_encoder"] = ImageComponent(self.image_encoder)
        comps["head"] = HeadComponent(self.head, cfg.min_depth, cfg.max_depth, frame_size, dynamic)
        comps["text_encoder"] = TextComponent(self.text_encoder)
        comps["scene_bias"] = SceneBiasComponent(self.head)
        return comps

    def forward(
        self,
        pixel_values: torch.Tensor,
        text_emb: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        frame_size: tuple[int, int] | None = None,
        reference: bool = False,
    ) -> DepthOutput:
        """Metric depth for normalised images (B,3,h,w).

        Give either ``text_emb`` (B, text_dim) or a precomputed per-scene ``bias``.
        ``reference=True`` runs the full cross-attention instead of the folded bias.
        """
        rel, feats = self.encode_frame(pixel_values)
        return self.head_forward(rel, feats, text_emb=text_emb, bias=bias, frame_size=frame_size, reference=reference)

    def head_forward(
        self,
        rel: torch.Tensor,
        feats: torch.Tensor,
        text_emb: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        frame_size: tuple[int, int] | None = None,
        reference: bool = False,
    ) -> DepthOutput:
        """The trainable part, from encoder outputs (lets training cache the encoders)."""
        grid = (rel.shape[-2] // PATCH_SIZE, rel.shape[-1] // PATCH_SIZE)
        if reference:
            if text_emb is None:
                raise ValueError("reference=True needs text_emb")
            a, b = self.head.forward_reference(feats, text_emb, grid)
        else:
            if bias is None:
                if text_emb is None:
                    raise ValueError("give text_emb or bias")
                bias = self.head.scene_bias(text_emb)
            a, b = self.head.forward_frame(feats, bias, grid)
        raw = metric_from_relative(a, b, rel)
        depth = postprocess_depth(raw, frame_size, self.cfg.min_depth, self.cfg.max_depth)
        return DepthOutput(depth=depth, scale=a, shift=b, relative=rel.float(), raw_depth=raw)


def build_model(cfg: ModelConfig, head_state: dict[str, torch.Tensor] | None = None) -> TR2M:
    """Build (and load) every part of a TR2M model from its config.

    Encoders load from their sources (or are random for specs without one); the head is
    random unless ``head_state`` is given. Raises ConfigError when widths disagree.
    """
    depth = build_depth_encoder(cfg.depth, return_tokens=cfg.shared_backbone)
    image = None if cfg.shared_backbone else build_image_encoder(cfg.image)
    text = build_text_encoder(cfg.text)
    feat_dim = depth.hidden_size if image is None else image.hidden_size
    if feat_dim != cfg.head.in_channels:
        raise ConfigError(
            f"The image features are {feat_dim}-d but head.in_channels is {cfg.head.in_channels}; "
            "set head.in_channels to the image encoder's hidden size."
        )
    if text.embed_dim != cfg.head.text_dim:
        raise ConfigError(
            f"The text encoder gives {text.embed_dim}-d embeddings but head.text_dim is {cfg.head.text_dim}."
        )
    return TR2M(cfg, depth, image, text, build_head(cfg, head_state))
