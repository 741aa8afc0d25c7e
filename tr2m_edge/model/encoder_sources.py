"""``--depth-model`` / ``--image-model`` / ``--text-model``: point a config's encoders elsewhere.

Each value is a local directory (``save_pretrained``), a weight file or a hub id; the
text tower also takes open_clip forms. What a value means:

============================  =========================================================
value                         encoder spec
============================  =========================================================
``DIR`` / ``FILE`` / ``org/x``  depth, image: ``source`` = the value (a bare weight file is
                              built with the sizes of the encoder it replaces)
``DIR`` (text)                an open_clip folder (``open_clip_model.safetensors`` or
                              ``open_clip_pytorch_model.bin`` inside, as a hub snapshot
                              of ``timm/vit_large_patch14_clip_224.openai``): that file;
                              otherwise a ``CLIPTextModelWithProjection`` save_pretrained
                              folder (``hf_clip``)
``FILE`` (text)               weights for the current text architecture (open_clip:
                              ``pretrained`` = FILE; hf_clip: ``source`` = FILE)
``NAME`` / ``NAME:TAG|FILE``  open_clip model ``NAME`` (e.g. ``ViT-L-14-quickgelu``) with
                              pretrained tag / file (default: the current tag, else openai)
``org/name`` (text)           a hub id of a ``CLIPTextModelWithProjection`` (``hf_clip``)
============================  =========================================================

The result is written into the checkpoint / bundle config (``EncoderSpec.source`` /
``pretrained``), so the artifact records where its encoders came from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from tr2m_edge.config import EncoderSpec, ModelConfig
from tr2m_edge.errors import ConfigError
from tr2m_edge.model.loaders import OPEN_CLIP_FILES

DEFAULT_OPEN_CLIP = ("ViT-L-14-quickgelu", "openai")  # OpenAI CLIP ViT-L/14, the released text tower


@dataclass(frozen=True)
class EncoderSources:
    """Command-line encoder overrides (None: keep the config's)."""

    depth: str | None = None
    image: str | None = None
    text: str | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.depth, self.image, self.text))


def _with_sizes(spec: EncoderSpec, **changes: object) -> EncoderSpec:
    """``spec`` with ``changes``, keeping (or filling from the published sizes) the sizes a bare
    weight file needs for its architecture."""
    from tr2m_edge.model.summary import KNOWN_SIZES

    if min(spec.hidden_size, spec.num_layers, spec.num_heads) <= 0 and spec.source in KNOWN_SIZES:
        h, n, heads = KNOWN_SIZES[spec.source]
        changes.update(hidden_size=h, num_layers=n, num_heads=heads)
    return dataclasses.replace(spec, **changes)


def text_spec(value: str, current: EncoderSpec) -> EncoderSpec:
    """The text EncoderSpec a ``--text-model`` value names (see the module table)."""
    path = Path(value).expanduser()
    if path.is_dir():
        for name in OPEN_CLIP_FILES:
            if (path / name).is_file():
                return _open_clip(current, current.source if current.family == "open_clip" else None, str(path / name))
        return _with_sizes(current, family="hf_clip", source=str(path), pretrained=None)
    if path.is_file():
        if current.family == "open_clip":
            return _open_clip(current, current.source, str(path))
        return _with_sizes(current, source=str(path), pretrained=None)
    if "/" in value and ":" not in value:
        return _with_sizes(current, family="hf_clip", source=value, pretrained=None)
    name, _, pretrained = value.partition(":")
    if not name:
        raise ConfigError(f"--text-model '{value}' names no model; use e.g. ViT-L-14-quickgelu:openai.")
    default = current.pretrained if current.family == "open_clip" and current.pretrained else DEFAULT_OPEN_CLIP[1]
    return _open_clip(current, name, pretrained or default)


def _open_clip(current: EncoderSpec, name: str | None, pretrained: str) -> EncoderSpec:
    spec = _with_sizes(current, family="open_clip") if current.family != "open_clip" else current
    if name is None and min(spec.hidden_size, spec.num_layers, spec.num_heads) <= 0:
        name = DEFAULT_OPEN_CLIP[0]
    return dataclasses.replace(spec, source=name, pretrained=pretrained)


def with_encoder_sources(cfg: ModelConfig, sources: EncoderSources) -> ModelConfig:
    """``cfg`` with the encoders ``sources`` names; ConfigError for an impossible override."""
    if not sources:
        return cfg
    changes: dict[str, EncoderSpec] = {}
    if sources.depth is not None:
        changes["depth"] = _with_sizes(cfg.depth, source=sources.depth)
    if sources.image is not None:
        if cfg.image is None:
            raise ConfigError(
                f"--image-model does not apply to preset '{cfg.name}': it reads the depth model's own tokens "
                "(no separate image encoder). Use --depth-model."
            )
        changes["image"] = _with_sizes(cfg.image, source=sources.image)
    if sources.text is not None:
        changes["text"] = text_spec(sources.text, cfg.text)
    return cfg.replace(**changes)
