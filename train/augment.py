"""Training augmentations of TR2M (paper, section 2 of TR2M_FACTS), applied consistently.

- Horizontal flip with p = 0.5: image and depth are mirrored together and the caption's
  "left" and "right" are swapped, so the text still describes the picture.
- With p = 0.5 a photometric change of the image only: gamma in [0.9, 1.1], brightness
  in [0.75, 1.25] (NYU) or [0.9, 1.1] (other sets), per-channel colour in [0.9, 1.1].

Every random draw comes from the ``rng`` the caller passes, so a sample's augmentation is
a function of its seed (exact resume, identical single- and multi-process runs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from tr2m_edge.errors import ConfigError

_SIDES = re.compile(r"\b(left|right)(most|wards?|-hand)?\b", re.IGNORECASE)


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the training augmentations (paper defaults)."""

    flip_p: float = 0.5  # probability of a horizontal flip
    photometric_p: float = 0.5  # probability of the gamma / brightness / colour change
    gamma: tuple[float, float] = (0.9, 1.1)
    brightness: tuple[float, float] = (0.9, 1.1)  # NYU: (0.75, 1.25)
    colour: tuple[float, float] = (0.9, 1.1)  # per channel

    def __post_init__(self) -> None:
        for name in ("flip_p", "photometric_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"augment.{name} must lie in [0, 1]; got {getattr(self, name)}.")
        for name in ("gamma", "brightness", "colour"):
            lo, hi = (float(v) for v in getattr(self, name))
            object.__setattr__(self, name, (lo, hi))
            if not 0 < lo <= hi:
                raise ConfigError(f"augment.{name} must be a range 0 < low <= high; got {(lo, hi)}.")


def swap_sides(caption: str) -> str:
    """Swap the words "left" and "right" (case kept), as a horizontal flip requires."""

    def repl(m: re.Match[str]) -> str:
        word = m.group(1)
        other = "right" if word.lower() == "left" else "left"
        if word.isupper():
            other = other.upper()
        elif word[0].isupper():
            other = other.capitalize()
        return other + (m.group(2) or "")

    return _SIDES.sub(repl, caption)


def augment_sample(
    image: np.ndarray, depth: np.ndarray, caption: str, cfg: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, str]:
    """Augment one training sample.

    Args:
        image: (H, W, 3) float32 RGB in [0, 1].
        depth: (H, W) float32 metres (0 = invalid).
        caption: the sample's caption.
        cfg: ranges and probabilities.
        rng: the sample's random generator.

    Returns:
        (image, depth, caption), image clipped to [0, 1].
    """
    # draw every number up front, in a fixed order, whatever branches are taken
    flip = rng.random() < cfg.flip_p
    photometric = rng.random() < cfg.photometric_p
    gamma = rng.uniform(*cfg.gamma)
    brightness = rng.uniform(*cfg.brightness)
    colour = rng.uniform(cfg.colour[0], cfg.colour[1], size=3).astype(np.float32)
    if flip:
        image = image[:, ::-1]
        depth = depth[:, ::-1]
        caption = swap_sides(caption)
    if photometric:
        image = np.clip(image, 0.0, 1.0) ** gamma
        image = image * brightness * colour[None, None, :]
    return (np.ascontiguousarray(np.clip(image, 0.0, 1.0), dtype=np.float32),
            np.ascontiguousarray(depth, dtype=np.float32), caption)
