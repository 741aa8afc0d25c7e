"""The one source of truth for model and preprocessing settings.

Frozen dataclasses, saved as JSON inside every checkpoint, ONNX bundle and log, so an
artifact always carries the exact settings that produced it. Variants are presets of the
same config (``paper``, ``edge``, ``tiny``), never copied modules.

This module imports no PyTorch: the runtime reads configs from bundles without it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tr2m_edge.errors import ConfigError, InputError
from tr2m_edge.schema import build

PATCH_SIZE = 14  # ViT patch size of every encoder: input sizes are multiples of it
CONTEXT_LENGTH = 77  # CLIP text context (tokens per caption)
MAX_INPUT_SIDE = 4032  # largest network input side (288 patches; KITTI's 350x1204 fits); memory grows with its square
OUTPUT_STRIDES = (1, 2, 4, 8)  # resolutions of the head's decoder: 1/stride of the network input
MAX_FRAME_SIDE = 8192  # largest camera frame side (8K); larger frames are refused before any allocation
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ENCODER_FAMILIES = ("depth_anything", "dinov2", "open_clip", "hf_clip")
TEXT_FAMILIES = ("open_clip", "hf_clip")
TEXT_PRECISIONS = ("fp32", "fp16")
RESIZE_MODES = ("bilinear", "antialias")


@dataclass(frozen=True)
class EncoderSpec:
    """A frozen encoder: where its weights come from, or the sizes of a random one.

    With ``source`` set, weights load from a local directory (``save_pretrained``), a
    weight file or a hub id (open_clip: ``source`` is the model name, ``pretrained`` the tag
    or weight file); with neither, the same model class is built from the sizes below with
    random weights (tests, offline demo). Sizes also give the architecture of a bare
    weight file (no ``config.json`` beside it; open_clip: ``source=None`` + ``pretrained``).
    """

    family: str  # depth_anything | dinov2 | open_clip | hf_clip
    source: str | None = None  # hub id or local path (open_clip: model name, e.g. ViT-L-14-quickgelu)
    pretrained: str | None = None  # open_clip only: pretrained tag or weight-file path
    hidden_size: int = 0  # random build: transformer width
    num_layers: int = 0  # random build: transformer depth
    num_heads: int = 0  # random build: attention heads
    embed_dim: int = 0  # text encoders: size of the output embedding (after projection)
    seed: int = 0  # random build: weight seed (the same spec always gives the same weights)
    precision: str = "fp32"  # text encoders: fp32, or fp16 as the released code runs CLIP on CUDA

    def __post_init__(self) -> None:
        if self.family not in ENCODER_FAMILIES:
            raise ConfigError(
                f"Unknown encoder family '{self.family}'. Available: {', '.join(ENCODER_FAMILIES)}."
            )
        if self.precision not in TEXT_PRECISIONS or (self.precision != "fp32" and self.family not in TEXT_FAMILIES):
            raise ConfigError(
                f"Encoder precision '{self.precision}' is not available for '{self.family}': text encoders take "
                f"{' or '.join(TEXT_PRECISIONS)}, the image and depth encoders fp32 (export --fp16 makes their fp16 graphs)."
            )
        if self.source is None and min(self.hidden_size, self.num_layers, self.num_heads) <= 0:
            raise ConfigError(
                f"Encoder '{self.family}' has no source, so it needs hidden_size, num_layers "
                "and num_heads > 0 to be built with random weights."
            )
        if self.pretrained is not None and self.family != "open_clip":
            raise ConfigError(f"'pretrained' is for open_clip text encoders; give the {self.family} weights as 'source'.")
        if self.family == "depth_anything" and self.source is None and self.num_layers < 4:
            raise ConfigError(
                "A random Depth Anything encoder needs num_layers >= 4 (its DPT neck reads "
                f"four distinct blocks); got {self.num_layers}."
            )

    @property
    def is_random(self) -> bool:
        """True when this encoder is built from sizes with random weights."""
        return self.source is None and self.pretrained is None

    def describe(self) -> str:
        """Where this encoder's weights come from, in words (``info``, ``import-official``)."""
        if self.is_random:
            return f"random {self.hidden_size}-wide x {self.num_layers} (tests)"
        if self.family == "open_clip":
            return f"open_clip {self.source or '(sizes)'}:{self.pretrained or 'random'}"
        return str(self.source)


@dataclass(frozen=True)
class HeadConfig:
    """The trainable rescale head ("ScaleMapModel" of the released code)."""

    in_channels: int = 1024  # width of the image tokens and of the cross-attention block
    num_heads: int = 8  # attention heads of the cross-attention block
    mlp_ratio: int = 4  # MLP hidden = mlp_ratio * in_channels
    text_dim: int = 768  # size of the text embedding fed to align_mlp
    project_channels: int = 192  # 1x1 projection after the tokens are laid out as a map
    decoder_channels: int = 128  # width of the fusion trunk (layer1_rn, RCUs)
    mid_channels: int = 64  # per-head 3x3 conv output ("mid" pixel embeddings)
    out_hidden: int = 32  # per-head 3x3 conv before the final 1x1
    coef_scale: float = 0.01  # A = coef_scale * exp(scale_out)
    coef_shift: float = 0.01  # B = coef_shift * exp(shift_out)
    output_stride: int = 1  # A and B computed at 1/stride of the input (1: full, as released; 2, 4, 8), then upsampled

    def __post_init__(self) -> None:
        if self.in_channels % self.num_heads:
            raise ConfigError(
                f"head.in_channels ({self.in_channels}) must be divisible by head.num_heads "
                f"({self.num_heads})."
            )
        if self.output_stride not in OUTPUT_STRIDES:
            raise ConfigError(f"head.output_stride must be one of {', '.join(map(str, OUTPUT_STRIDES))}; "
                              f"got {self.output_stride}.")
        for name in ("in_channels", "num_heads", "mlp_ratio", "text_dim", "project_channels", "decoder_channels",
                     "mid_channels", "out_hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"head.{name} must be >= 1; got {getattr(self, name)}.")


@dataclass(frozen=True)
class PreprocessConfig:
    """How a frame becomes the network input: resize + normalise.

    ``resize``: ``bilinear`` is bilinear with align_corners=True and no antialiasing, as the
    released evaluation scripts resize (the default, for parity with the paper's numbers);
    ``antialias`` is antialiased bilinear (half-pixel centres, the filter widened by the
    downscale factor), as the released demo resizes camera images (PIL through
    torchvision): for frames much larger than the network input.
    """

    input_size: tuple[int, int] = (434, 560)  # (height, width), multiples of 14
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resize: str = "bilinear"  # bilinear (align_corners, eval scripts) | antialias (the released demo)

    def __post_init__(self) -> None:
        size = tuple(int(v) for v in self.input_size)
        object.__setattr__(self, "input_size", size)
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        check_input_size(size)
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"mean/std need 3 values with std > 0; got {self.mean} / {self.std}.")
        if self.resize not in RESIZE_MODES:
            raise ConfigError(f"Unknown resize '{self.resize}'. Available: {', '.join(RESIZE_MODES)}.")

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid (rows, cols) of the input size."""
        return self.input_size[0] // PATCH_SIZE, self.input_size[1] // PATCH_SIZE


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a TR2M model and feed it frames."""

    name: str
    depth: EncoderSpec
    image: EncoderSpec | None  # None: reuse the depth model's own backbone tokens (edge)
    text: EncoderSpec
    head: HeadConfig = field(default_factory=HeadConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    min_depth: float = 1e-3  # metres; outputs are clipped to [min_depth, max_depth]
    max_depth: float = 10.0

    def __post_init__(self) -> None:
        if self.depth.family != "depth_anything":
            raise ConfigError(f"depth encoder must be 'depth_anything'; got '{self.depth.family}'.")
        if self.image is not None and self.image.family != "dinov2":
            raise ConfigError(f"image encoder must be 'dinov2' or shared; got '{self.image.family}'.")
        if self.text.family not in TEXT_FAMILIES:
            raise ConfigError(f"text encoder must be 'open_clip' or 'hf_clip'; got '{self.text.family}'.")
        if not 0 < self.min_depth < self.max_depth:
            raise ConfigError(
                f"Depth range must satisfy 0 < min_depth < max_depth; got {self.min_depth}..{self.max_depth}."
            )
        if self.text.embed_dim and self.text.embed_dim != self.head.text_dim:
            raise ConfigError(
                f"text.embed_dim ({self.text.embed_dim}) must equal head.text_dim ({self.head.text_dim})."
            )

    @property
    def shared_backbone(self) -> bool:
        """True when image features come from the depth model's backbone (one ViT per frame)."""
        return self.image is None

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with top-level fields changed; ``input_size=(h, w)`` is accepted as a shortcut."""
        if "input_size" in changes:
            size = changes.pop("input_size")
            changes["preprocess"] = dataclasses.replace(self.preprocess, input_size=tuple(size))
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "model config") -> "ModelConfig":
        """Rebuild from :meth:`to_dict` output; every field type-checked (:func:`tr2m_edge.schema.build`)."""
        return build(cls, data, where)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"Model config is not valid JSON: {exc}.") from None


def check_input_size(size: tuple[int, ...] | list[int]) -> tuple[int, int]:
    """Validate an (height, width) network input size: two positive multiples of 14, at most MAX_INPUT_SIDE."""
    if len(size) != 2:
        raise ConfigError(f"Input size must be (height, width); got {tuple(size)}.")
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0 or h % PATCH_SIZE or w % PATCH_SIZE:
        hint = f"{max(PATCH_SIZE, round(h / PATCH_SIZE) * PATCH_SIZE)}x{max(PATCH_SIZE, round(w / PATCH_SIZE) * PATCH_SIZE)}"
        raise ConfigError(
            f"Input size {h}x{w} is not a multiple of {PATCH_SIZE} in both dimensions "
            f"(the ViT patch size); use e.g. {hint}."
        )
    if max(h, w) > MAX_INPUT_SIDE:
        raise ConfigError(f"Input size {h}x{w} is larger than the supported {MAX_INPUT_SIDE} px per side "
                          "(attention memory grows with the square of the token count); use e.g. 434x560.")
    return h, w


def parse_size(text: str) -> tuple[int, int]:
    """Parse 'HxW' (or 'H,W') into a validated input size."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"Cannot read size '{text}'; write it as HEIGHTxWIDTH, e.g. 434x560.") from None
    return check_input_size(size)


def check_frame_size(size: tuple[int, ...] | list[int]) -> tuple[int, int]:
    """Validate a camera frame size (height, width): both sides from 2 to MAX_FRAME_SIDE."""
    if len(size) != 2 or min(int(v) for v in size) < 2:
        raise ConfigError(f"Frame size must be (height, width) with both >= 2; got {tuple(size)}.")
    h, w = int(size[0]), int(size[1])
    if max(h, w) > MAX_FRAME_SIDE:
        raise ConfigError(f"Frame size {h}x{w} is larger than the supported {MAX_FRAME_SIDE} px per side; "
                          "give the camera's frame size, e.g. 480x640.")
    return h, w


def parse_width_height(text: str, flag: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (width first, as screens and camera modes are named: 1280x720) -> (width, height).

    Raises:
        InputError: anything else, naming ``flag``.
    """
    parts = str(text).lower().replace(" ", "").split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise InputError(f"{flag} {text!r} is not WIDTHxHEIGHT: give e.g. 1280x720 (width first).")
    return int(parts[0]), int(parts[1])


def parse_frame_size(text: str) -> tuple[int, int]:
    """Parse a camera frame size 'HxW' (any size; the network input is resized from it)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"Cannot read frame size '{text}'; write it as HEIGHTxWIDTH, e.g. 480x640.") from None
    return check_frame_size((h, w))


# --------------------------------------------------------------------------- presets

def _paper() -> ModelConfig:
    return ModelConfig(
        name="paper",
        depth=EncoderSpec("depth_anything", source="LiheYoung/depth-anything-small-hf"),
        image=EncoderSpec("dinov2", source="facebook/dinov2-large"),
        # OpenAI CLIP ViT-L/14 uses QuickGELU; open_clip's plain "ViT-L-14" builds nn.GELU.
        text=EncoderSpec("open_clip", source="ViT-L-14-quickgelu", pretrained="openai", embed_dim=768),
        head=HeadConfig(in_channels=1024, num_heads=8, text_dim=768),
        preprocess=PreprocessConfig(input_size=(434, 560)),
        min_depth=1e-3,
        max_depth=80.0,  # trained on NYUv2 + KITTI + VOID + C3VD: up to KITTI's 80 m
    )


def _edge() -> ModelConfig:
    """The paper preset with one ViT per frame: the head reads Depth Anything V2-S's own tokens."""
    paper = _paper()
    return paper.replace(
        name="edge",
        depth=EncoderSpec("depth_anything", source="depth-anything/Depth-Anything-V2-Small-hf"),
        image=None,
        # A and B at 1/8 of the input: per frame 1.11x the depth model's MACs (full resolution: 1.65x)
        head=dataclasses.replace(paper.head, in_channels=384, output_stride=8),
    )


def _tiny() -> ModelConfig:
    return ModelConfig(
        name="tiny",
        depth=EncoderSpec("depth_anything", hidden_size=32, num_layers=4, num_heads=2),
        image=EncoderSpec("dinov2", hidden_size=48, num_layers=2, num_heads=2),
        text=EncoderSpec("open_clip", hidden_size=32, num_layers=2, num_heads=2, embed_dim=64),
        head=HeadConfig(
            in_channels=48, num_heads=4, mlp_ratio=2, text_dim=64, project_channels=32,
            decoder_channels=24, mid_channels=16, out_hidden=8,
        ),
        preprocess=PreprocessConfig(input_size=(140, 182)),
        min_depth=1e-3,
        max_depth=80.0,
    )


PRESETS = {"paper": _paper, "edge": _edge, "tiny": _tiny}


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str) -> ModelConfig:
    """The named preset config; ConfigError listing the alternatives otherwise."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ConfigError(f"Unknown preset '{name}'. Available: {', '.join(PRESETS)}.") from None


def load_config(path: str | Path) -> ModelConfig:
    """Read a model config JSON file (as written by :meth:`ModelConfig.to_json`)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Config file not found: {p}. Pass a JSON file written by tr2m-edge.")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Config file {p} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    return ModelConfig.from_json(text)
