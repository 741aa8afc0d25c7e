"""The demo's training stage: a short, self-contained training run on synthetic scenes."""

from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console

from tr2m_edge.errors import ConfigError
from tr2m_edge.train.config import TrainConfig
from tr2m_edge.train.datasets import DatasetSpec
from tr2m_edge.train.losses import LossConfig

log = logging.getLogger(__name__)


def demo_config(out_dir: str | Path, steps: int = 200, seed: int = 0, progress: bool = True) -> TrainConfig:
    """The demo's config: the tiny preset on 192 synthetic training and 24 validation scenes.

    The tiny preset's random encoders carry no learned signal, so the demo uses a higher
    learning rate than the paper's 1e-5 (cosine with warmup), no augmentation (so encoder
    outputs are cached), and ranks the coarse contrast by ground-truth depth: the
    relative depth of a random Depth Anything is no usable scale key.
    """
    if steps < 1:
        raise ConfigError(f"demo steps must be >= 1; got {steps}.")
    return TrainConfig(
        model="tiny",
        train=(DatasetSpec("synthetic", count=192, seed=seed),),
        val=DatasetSpec("synthetic", split="val", count=24, seed=seed + 1000),
        out_dir=str(out_dir), steps=steps, batch_size=8, lr=2e-3, weight_decay=1e-2,
        schedule="cosine", warmup_steps=min(20, max(steps // 10, 1)), augment=False,
        loss=LossConfig(scale_key="depth"), ckpt_every=steps, val_every=max(steps // 4, 1),
        log_every=10, seed=seed, progress=progress,
    )


def demo_train(out_dir: str | Path, steps: int = 200, seed: int = 0, progress: bool = True) -> Path:
    """Train the tiny preset on synthetic scenes for ``steps`` steps; returns best.pt.

    Validation AbsRel before and after training is printed (and logged to log.jsonl).
    """
    from tr2m_edge.train.trainer import train

    result = train(demo_config(out_dir, steps, seed, progress))
    vals = [h for h in result.history if h.get("event") == "val" and "abs_rel" in h.get("metrics", {})]
    if vals and progress:
        first, best = vals[0]["metrics"]["abs_rel"], min(v["metrics"]["abs_rel"] for v in vals)
        Console(stderr=True).print(
            f"validation AbsRel: untrained {first:.3f} -> trained {best:.3f} ({first / max(best, 1e-9):.1f}x lower)")
    if result.best is None:
        raise ConfigError(f"Training in {out_dir} wrote no best.pt; see {result.out_dir / 'log.jsonl'}.")
    return result.best
