"""Frozen encoders: Depth Anything (relative depth), DINOv2 (image tokens), CLIP text.

Each is the real ``transformers`` / ``open_clip`` model class, loaded from a local path or
hub id, or built from a small config with random weights when the spec has no source
(tests and the offline demo). All are returned in eval mode with gradients off.

Random encoders are deterministic: built under ``spec.seed`` (the global RNG is left as it
was), so training, export and runtime rebuild the very same frozen weights from a config.
A random Depth Anything is also calibrated (:func:`calibrate_random_depth`) so that its
relative depth has realistic magnitudes.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
from typing import Callable, Iterator

import torch
from torch import nn

from tr2m_edge.config import CONTEXT_LENGTH, PATCH_SIZE, EncoderSpec
from tr2m_edge.errors import ConfigError
from tr2m_edge.model import hub
from tr2m_edge.model.loaders import load_open_clip, load_transformers
from tr2m_edge.model.pos_embed import use_original_position_interpolation

log = logging.getLogger(__name__)
CLIP_VOCAB = 49408  # open_clip / OpenAI BPE vocabulary size


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and no gradients: frozen encoders never train."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


RANDOM_DEPTH_MEAN = 5.0  # mean relative depth of a calibrated random Depth Anything
_CALIBRATION_SIZE = (98, 126)  # input of the calibration pass (multiples of 14)


@contextlib.contextmanager
def random_weights(seed: int) -> Iterator[None]:
    """Seed torch's global RNG for a build and restore it afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def _on_meta(module: nn.Module) -> bool:
    return any(p.device.type == "meta" for p in module.parameters())


@torch.no_grad()
def calibrate_random_depth(encoder: "DepthEncoder", seed: int = 0, target_mean: float = RANDOM_DEPTH_MEAN) -> float:
    """Give a random Depth Anything realistic activation scales.

    Built from a config, Depth Anything's initialisation (std 0.02 convolutions, no norms
    in the DPT neck and head) shrinks activations layer by layer to a relative depth of
    about 1e-8: below fp16's range, and so small that metric depth ignores it. One forward
    pass on a fixed smooth noise image rescales every neck/head convolution so that its
    output has unit standard deviation, in order (layer-sequential unit-variance
    initialisation, Mishkin & Matas 2015); then the last convolution (followed by a ReLU,
    so exactly proportional) is scaled to a mean relative depth of ``target_mean``.
    Only ever applied to encoders without released weights. Returns that last factor.
    """
    da = encoder.model
    last = da.head.conv3
    convs = [m for part in (da.neck, da.head) for m in part.modules()
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m is not last]

    def unit_std(module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        std = float(output.std())
        if std > 0:
            module.weight.mul_(1.0 / std)
            if module.bias is not None:
                module.bias.mul_(1.0 / std)
            output = output / std
        return output

    gen = torch.Generator().manual_seed(int(seed))
    h, w = _CALIBRATION_SIZE
    device = next(encoder.parameters()).device
    noise = torch.randn(1, 3, h // 7, w // 7, generator=gen, device="cpu").to(device)
    image = torch.nn.functional.interpolate(noise, size=(h, w), mode="bilinear", align_corners=True)
    hooks = [m.register_forward_hook(unit_std) for m in convs]
    try:
        encoder(image)
    finally:
        for hook in hooks:
            hook.remove()
    mean = float(encoder(image)[0].mean())
    if not mean > 0:
        return 1.0
    k = target_mean / mean
    last.weight.mul_(k)
    if last.bias is not None:
        last.bias.mul_(k)
    return k


class DepthEncoder(nn.Module):
    """Depth Anything: image (B,3,H,W) -> relative depth D_r (B,1,H,W) [+ last-block tokens].

    The backbone, neck and head are called in turn (as ``DepthAnythingForDepthEstimation``
    does) so that the ``edge`` preset can also take the backbone's last-block patch tokens
    (after its final LayerNorm) from the same pass.
    """

    def __init__(self, model: nn.Module, return_tokens: bool) -> None:
        super().__init__()
        self.model = model
        self.return_tokens = return_tokens
        bb = model.config.backbone_config
        self.hidden_size = int(bb.hidden_size)
        if return_tokens and list(bb.out_indices)[-1] != bb.num_hidden_layers:
            raise ConfigError(
                "The shared-backbone (edge) preset needs the depth model's last out_index to be "
                f"its last block ({bb.num_hidden_layers}); got out_indices {list(bb.out_indices)}."
            )

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        feature_maps = self.model.backbone(pixel_values).feature_maps
        ph, pw = pixel_values.shape[-2] // PATCH_SIZE, pixel_values.shape[-1] // PATCH_SIZE
        hidden = self.model.neck(list(feature_maps), ph, pw)
        rel = self.model.head(hidden, ph, pw).unsqueeze(1)
        tokens = feature_maps[-1][:, 1:] if self.return_tokens else None
        return rel, tokens


class ImageEncoder(nn.Module):
    """DINOv2: image (B,3,H,W) -> last-block patch tokens after the final LayerNorm (B,N,C)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.hidden_size = int(model.config.hidden_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).last_hidden_state[:, 1:]


class Fp32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 and cast back to its input's dtype (as OpenAI's CLIP
    does in fp16: the released code runs its text tower that way on CUDA)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


_FP32_NORMS: dict[type, type] = {}


def half_precision(model: nn.Module) -> nn.Module:
    """Weights and activations in fp16, every LayerNorm computed in fp32 (in place; each norm's
    class becomes a subclass computing in fp32, its weights and state-dict keys unchanged)."""
    model.half()
    for mod in model.modules():
        if isinstance(mod, nn.LayerNorm) and not isinstance(mod, Fp32LayerNorm):
            cls = type(mod)
            if cls not in _FP32_NORMS:
                _FP32_NORMS[cls] = type(f"Fp32{cls.__name__}", (Fp32LayerNorm, cls),
                                        {"forward": Fp32LayerNorm.forward, "__module__": __name__})
            mod.__class__ = _FP32_NORMS[cls]
            mod.float()
    return model


class TextEncoder(nn.Module):
    """CLIP text tower: token ids (B,77) int64 -> pooled, projected embedding (B,D).

    ``precision`` ``fp16`` runs the tower in half precision with fp32 LayerNorms (the
    released code's CUDA behaviour; the embedding moves by ~0.15 % RMS from fp32); the
    output keeps the tower's dtype (callers cast to float32).
    """

    def __init__(self, model: nn.Module, family: str, embed_dim: int, precision: str = "fp32") -> None:
        super().__init__()
        self.model = model
        self.family = family
        self.embed_dim = embed_dim
        self.precision = precision

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.family == "open_clip":
            return self.model.encode_text(tokens)
        return self.model(input_ids=tokens).text_embeds

    def float32_copy(self) -> "TextEncoder":
        """The same weights (fp16-rounded ones stay so) computing in float32: what the exporter
        traces before converting the graph to fp16 (tracing fp16 on the CPU is unsupported)."""
        return freeze(TextEncoder(copy.deepcopy(self.model).float(), self.family, self.embed_dim, "fp32"))

    def at_precision(self, precision: str) -> "TextEncoder":
        """This encoder when it already computes in ``precision`` (fp32 | fp16), else a converted copy."""
        if precision == self.precision:
            return self
        copied = self.float32_copy()
        if precision == "fp16":
            half_precision(copied.model)
            copied.precision = "fp16"
        return copied


def text_activation(encoder: TextEncoder) -> str:
    """The MLP activation of the text tower: ``quick_gelu`` (x * sigmoid(1.702 x), OpenAI CLIP) or ``gelu``."""
    if encoder.family == "hf_clip":
        return str(encoder.model.config.hidden_act)
    act = encoder.model.transformer.resblocks[0].mlp.gelu
    return "quick_gelu" if type(act).__name__ == "QuickGELU" else type(act).__name__.lower()


# ------------------------------------------------------------------ builders

def _random_depth_anything(spec: EncoderSpec) -> nn.Module:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    h, n = spec.hidden_size, spec.num_layers
    backbone = Dinov2Config(
        hidden_size=h, num_hidden_layers=n, num_attention_heads=spec.num_heads,
        intermediate_size=4 * h, patch_size=PATCH_SIZE, image_size=518,
        out_indices=list(range(n - 3, n + 1)), apply_layernorm=True, reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=h,
        neck_hidden_sizes=[max(4, h // 8), max(4, h // 4), max(4, h // 2), h],
        fusion_hidden_size=max(8, h // 6), head_hidden_size=max(4, h // 12),  # DA-S: 64, 32
    )
    with random_weights(spec.seed):
        return DepthAnythingForDepthEstimation(config)


def _sized(spec: EncoderSpec, build: Callable[[EncoderSpec], nn.Module]) -> Callable[[], nn.Module] | None:
    """The from-sizes builder of ``spec`` when it carries sizes (architecture of a bare weight file)."""
    return (lambda: build(spec)) if min(spec.hidden_size, spec.num_layers, spec.num_heads) > 0 else None


def build_depth_encoder(spec: EncoderSpec, return_tokens: bool = False) -> DepthEncoder:
    from transformers import DepthAnythingForDepthEstimation

    if spec.source is not None:
        model = load_transformers(DepthAnythingForDepthEstimation, spec.source, hub.WHAT[spec.family],
                                  spec.family, _sized(spec, _random_depth_anything))
    else:
        model = _random_depth_anything(spec)
    use_original_position_interpolation(model)
    encoder = freeze(DepthEncoder(model, return_tokens))
    if spec.is_random and not _on_meta(encoder):
        calibrate_random_depth(encoder, seed=spec.seed)
    return encoder


def _random_dinov2(spec: EncoderSpec) -> nn.Module:
    from transformers import Dinov2Config, Dinov2Model

    config = Dinov2Config(
        hidden_size=spec.hidden_size, num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads, intermediate_size=4 * spec.hidden_size,
        patch_size=PATCH_SIZE, image_size=518,
    )
    with random_weights(spec.seed):
        return Dinov2Model(config)


def build_image_encoder(spec: EncoderSpec) -> ImageEncoder:
    from transformers import Dinov2Model

    if spec.source is not None:
        model = load_transformers(Dinov2Model, spec.source, hub.WHAT[spec.family], spec.family,
                                  _sized(spec, _random_dinov2))
    else:
        model = _random_dinov2(spec)
    use_original_position_interpolation(model)
    return freeze(ImageEncoder(model))


def build_text_encoder(spec: EncoderSpec) -> TextEncoder:
    """The text tower of ``spec`` (QuickGELU where the architecture says so), in ``spec.precision``."""
    if spec.family == "open_clip":
        model = load_open_clip(spec.source, spec.pretrained, lambda: _random_open_clip(spec))
        dim = int(model.text_projection.shape[-1]) if model.text_projection is not None else spec.embed_dim
    else:
        model = _build_hf_clip(spec)
        dim = int(model.config.projection_dim)
    if spec.embed_dim and dim != spec.embed_dim:
        raise ConfigError(
            f"Text encoder '{spec.source}' outputs {dim}-d embeddings but the config expects {spec.embed_dim}."
        )
    encoder = TextEncoder(model, spec.family, dim, spec.precision)
    if spec.precision == "fp16":
        half_precision(encoder.model)
    if spec.family == "open_clip" and spec.source is not None and text_activation(encoder) != "quick_gelu":
        log.warning("open_clip '%s' uses %s; OpenAI CLIP (the released TR2M text tower) uses QuickGELU: "
                    "use '%s-quickgelu'.", spec.source, text_activation(encoder), spec.source)
    return freeze(encoder)


def _random_open_clip(spec: EncoderSpec) -> nn.Module:
    import open_clip

    with random_weights(spec.seed):
        return open_clip.CLIP(
            embed_dim=spec.embed_dim,
            vision_cfg=open_clip.CLIPVisionCfg(layers=1, width=16, head_width=16, patch_size=14, image_size=28),
            text_cfg=open_clip.CLIPTextCfg(
                context_length=CONTEXT_LENGTH, vocab_size=CLIP_VOCAB, width=spec.hidden_size,
                heads=spec.num_heads, layers=spec.num_layers,
            ),
            quick_gelu=True,
        )


def _random_hf_clip(spec: EncoderSpec) -> nn.Module:
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB, hidden_size=spec.hidden_size, intermediate_size=4 * spec.hidden_size,
        num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_heads,
        max_position_embeddings=CONTEXT_LENGTH, projection_dim=spec.embed_dim,
        hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=0,
    )
    with random_weights(spec.seed):
        return CLIPTextModelWithProjection(config)


def _build_hf_clip(spec: EncoderSpec) -> nn.Module:
    from transformers import CLIPTextModelWithProjection

    if spec.source is not None:
        return load_transformers(CLIPTextModelWithProjection, spec.source, hub.WHAT[spec.family], spec.family,
                                 _sized(spec, _random_hf_clip))
    return _random_hf_clip(spec)


@functools.lru_cache(maxsize=1)
def _open_clip_tokenizer() -> Callable[[list[str]], torch.Tensor]:
    import open_clip

    return open_clip.get_tokenizer("ViT-L-14")  # ~0.5 s to build: build it once per process


def tokenize(captions: list[str]) -> torch.Tensor:
    """open_clip's CLIP BPE tokenizer (vocabulary ships with the package: works offline).

    Returns (B, 77) int64 token ids, truncated to the context length.
    """
    return _open_clip_tokenizer()(captions).long()
