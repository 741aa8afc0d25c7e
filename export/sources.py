"""What an export starts from: a checkpoint, a Checkpoint, a built model, or a random head.

:func:`export_source` is the ``export`` command's source selection (``--ckpt`` or
``--random-head [--preset] [--random-encoders]``); :func:`load_source` turns any source
into the PyTorch model the graphs are traced from; :func:`state_hash` is the content hash
of a module's weights that keys the caption cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import torch

from tr2m_edge.checkpoint import Checkpoint, load_checkpoint, random_head_checkpoint
from tr2m_edge.config import get_preset
from tr2m_edge.errors import ConfigError
from tr2m_edge.model.encoder_sources import EncoderSources, with_encoder_sources
from tr2m_edge.model.summary import random_encoder_config
from tr2m_edge.model.tr2m import TR2M, build_model


def export_source(ckpt: str | Path | None = None, *, preset: str | None = None, random_head: bool = False,
                  random_encoders: bool = False, sources: EncoderSources | None = None) -> Checkpoint:
    """The checkpoint to export: ``ckpt``, or a random head of ``preset`` (tests, bench).

    Args:
        ckpt: a checkpoint file (``best.pt``).
        preset: preset of a random-head export (default ``tiny``).
        random_head: export a random head instead of a checkpoint.
        random_encoders: with ``random_head``, random encoders at the published sizes
            (no downloads; speed measurements only).
        sources: encoders to load instead of the config's (``--depth-model`` ...).

    Raises:
        ConfigError: the options contradict each other.
    """
    if random_head == (ckpt is not None):
        raise ConfigError("Give either --ckpt best.pt, or --random-head [--preset NAME] for a test bundle.")
    if random_encoders and not random_head:
        raise ConfigError("--random-encoders only goes with --random-head.")
    if ckpt is not None and preset is not None:
        raise ConfigError("--preset only goes with --random-head; a checkpoint carries its own config.")
    if random_encoders and sources:
        raise ConfigError("--random-encoders replaces every encoder; it does not go with --depth/--image/--text-model.")
    if ckpt is not None:
        loaded = load_checkpoint(ckpt)
        return dataclasses.replace(loaded, config=with_encoder_sources(loaded.config, sources)) if sources else loaded
    cfg = get_preset(preset or "tiny")
    cfg = random_encoder_config(cfg) if random_encoders else with_encoder_sources(cfg, sources or EncoderSources())
    return random_head_checkpoint(cfg)


def load_source(source: Checkpoint | str | Path | TR2M, input_size: tuple[int, int] | None) -> TR2M:
    """A TR2M model in eval mode from a checkpoint path, a Checkpoint, or a model (input size overridable)."""
    if isinstance(source, TR2M):
        model = source.eval()
        if input_size and tuple(input_size) != tuple(model.cfg.preprocess.input_size):
            model = model.with_input_size(input_size)
        return model
    ckpt = source if isinstance(source, Checkpoint) else load_checkpoint(source)
    cfg = ckpt.config.replace(input_size=input_size) if input_size else ckpt.config
    return build_model(cfg, head_state=ckpt.head).eval()


def with_export_settings(model: TR2M, *, resize: str | None = None, min_depth: float | None = None,
                         max_depth: float | None = None, text_precision: str | None = None) -> TR2M:
    """``model`` under a config with the export's overrides (None: keep the model's own).

    Args:
        resize: preprocess resize, ``bilinear`` (align_corners, the eval scripts') or
            ``antialias`` (the released demo's, for large camera frames).
        min_depth / max_depth: the output clip range in metres.
        text_precision: ``fp16`` computes the caption embedding as the released code does
            on CUDA (fp16 tower, fp32 LayerNorm), ``fp32`` in float32.

    Raises:
        ConfigError: an invalid value (unknown resize, min_depth >= max_depth, ...).
    """
    cfg = model.cfg
    pre = cfg.preprocess if resize is None else dataclasses.replace(cfg.preprocess, resize=resize)
    text = cfg.text if text_precision is None else dataclasses.replace(cfg.text, precision=text_precision)
    new = cfg.replace(preprocess=pre, text=text,
                      min_depth=cfg.min_depth if min_depth is None else float(min_depth),
                      max_depth=cfg.max_depth if max_depth is None else float(max_depth))
    return model if new == cfg else model.with_config(new)


def state_hash(module: torch.nn.Module) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes, bytes): a content hash of weights."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
