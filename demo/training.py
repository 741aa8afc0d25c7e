"""The demo's model and its TR2M head trainings.

The demo model is the ``tiny`` preset in the ``edge`` style, on stage 0: the head reads the
frozen stage-0 Depth Anything's own last-block tokens (``image=None``,
``head.in_channels`` = its hidden size, one ViT per frame), D_r is stage 0's learnt
relative depth (:mod:`tr2m_edge.demo.stage0`) and the text tower the demo's trained one
(:mod:`tr2m_edge.demo.text_encoder`, the tiny preset's sizes). Everything else (head
sizes, input size, depth range) is the tiny preset's, unchanged.

Two heads are trained with the project's trainer and losses on the same scenes: the full
loss (SILog + pseudo-depth SILog + scale-oriented contrast + smoothness, the paper's
weights) and the paper's ablation without the pseudo-depth and contrast terms.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from rich.console import Console

from tr2m_edge.config import ModelConfig, get_preset
from tr2m_edge.demo.stage0 import STAGE0_DIR, stage0_spec
from tr2m_edge.demo.text_encoder import text_spec
from tr2m_edge.errors import ConfigError
from tr2m_edge.train.config import TrainConfig
from tr2m_edge.train.datasets import DatasetSpec
from tr2m_edge.train.losses import LossConfig

log = logging.getLogger(__name__)
TRAIN_SEED = 0  # stream seed of the head's training scenes (offset by the demo seed)
VAL_SEED = 1000  # stream seed of its validation scenes (the only scenes any choice was made on)
VARIANTS = ("full", "ablation")
# A and B at 1/4 of the input, upsampled (the edge preset's output_stride idea; 4 ~ the decoder's own
# resolution, so no detail is dropped): the full-resolution map convolutions were most of a step.
HEAD_STRIDE = 4  # full loss | without the pseudo-depth and contrast terms


def demo_model_config(stage0: str | Path = STAGE0_DIR, text: str | Path | None = None) -> ModelConfig:
    """The tiny preset, edge style (the head reads the depth backbone's tokens), on stage 0's weights.

    Args:
        stage0: the stage-0 relative-depth weights (a ``save_pretrained`` folder).
        text: the demo's trained text tower (:mod:`tr2m_edge.demo.text_encoder`); None: the
            tiny preset's random one.
    """
    tiny = get_preset("tiny")
    depth = stage0_spec(stage0)
    return tiny.replace(name="tiny-edge-stage0", depth=depth, image=None,
                        text=tiny.text if text is None else text_spec(text),
                        head=dataclasses.replace(tiny.head, in_channels=depth.hidden_size, output_stride=HEAD_STRIDE))


def demo_loss(variant: str) -> LossConfig:
    """The full loss (paper weights), or the ablation with w_tpsi = w_soc = 0."""
    if variant not in VARIANTS:
        raise ConfigError(f"Unknown demo loss variant '{variant}'. Available: {', '.join(VARIANTS)}.")
    return LossConfig() if variant == "full" else LossConfig(w_tpsi=0.0, w_soc=0.0)


def demo_config(out_dir: str | Path, steps: int = 600, seed: int = 0, progress: bool = True, *,
                variant: str = "full", scenes: int = 384, val_scenes: int = 48,
                model: ModelConfig | None = None, input_size: tuple[int, int] | None = None) -> TrainConfig:
    """The demo's head training: the demo model on ``scenes`` synthetic training scenes.

    A higher learning rate than the paper's 1e-5 (a tiny head trained from scratch in
    minutes, cosine with warmup) and no augmentation, so the frozen encoders run once per
    scene (cached). Validation scenes pick best.pt; the demo's held-out scenes are never
    seen here.

    Args:
        variant: ``full`` or ``ablation`` (see :func:`demo_loss`).
        model: the model config (default: :func:`demo_model_config`).
        input_size: a smaller training/validation input (tests); None: the model's.
    """
    if steps < 1:
        raise ConfigError(f"demo steps must be >= 1; got {steps}.")
    cfg = model or demo_model_config()
    return TrainConfig(
        model=cfg, input_size=input_size,
        train=(DatasetSpec("synthetic", count=scenes, seed=TRAIN_SEED + seed),),
        val=DatasetSpec("synthetic", split="val", count=val_scenes, seed=VAL_SEED + seed),
        out_dir=str(out_dir), steps=steps, batch_size=8, lr=2e-3, weight_decay=1e-2,
        schedule="cosine", warmup_steps=min(30, max(steps // 10, 1)), augment=False,
        loss=demo_loss(variant), ckpt_every=steps, val_every=max(steps // 4, 1),
        log_every=10, seed=seed, progress=progress,
    )


def demo_train(out_dir: str | Path, steps: int = 600, seed: int = 0, progress: bool = True,
               **kwargs: object) -> Path:
    """Train one demo head (:func:`demo_config` with ``kwargs``); returns its best.pt.

    Validation AbsRel before and after training is printed (and logged to log.jsonl).
    """
    from tr2m_edge.train.trainer import train

    result = train(demo_config(out_dir, steps, seed, progress, **kwargs))  # type: ignore[arg-type]
    vals = [h for h in result.history if h.get("event") == "val" and "abs_rel" in h.get("metrics", {})]
    if vals and progress:
        first, best = vals[0]["metrics"]["abs_rel"], min(v["metrics"]["abs_rel"] for v in vals)
        Console(stderr=True).print(
            f"validation AbsRel: untrained {first:.3f} -> trained {best:.3f} ({first / max(best, 1e-9):.1f}x lower)")
    if result.best is None:
        raise ConfigError(f"Training in {out_dir} wrote no best.pt; see {result.out_dir / 'log.jsonl'}.")
    return result.best
