"""Dataset base class, per-dataset protocols and file readers (the folder format is in folder.py).

Every reader is a torch ``Dataset`` of dicts::

    {"image": (3, H, W) float32 RGB in [0, 1], "depth": (1, H, W) float32 metres (0 = no
     ground truth), "caption": str, "index": int, "group": str}

Indexing with an ``int`` gives the evaluation view: the native frame, caption line 0, no
augmentation. Indexing with ``(index, seed)`` gives the training view: a random caption
line, the augmentations of :mod:`tr2m_edge.train.augment`, drawn from ``seed``, and the
frame resized to ``size`` (image bilinear with align_corners=True, depth nearest) so that
samples batch. Keeping every random draw a function of the seed makes training resume
exactly and gives the same batches on one process or many.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from tr2m_edge.errors import DataError, InputError
from tr2m_edge.preprocess import resize_bilinear
from tr2m_edge.train.augment import AugmentConfig, augment_sample
from tr2m_edge.train.captions import CaptionSource, pick_caption

log = logging.getLogger(__name__)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")
KB_CROP = (352, 1216)  # KITTI benchmark crop (height, width): bottom rows, centred columns


@dataclass(frozen=True)
class Protocol:
    """How a dataset is trained on and evaluated (released TR2M evaluation code)."""

    name: str
    min_depth: float  # metres; valid ground truth lies strictly inside (min, max)
    max_depth: float
    crop: str  # evaluation mask, a name understood by tr2m_edge.metrics.crop_mask
    input_size: tuple[int, int] | None  # released evaluation input size; None: the model's own
    variance_focus: float  # SILog lambda
    brightness: tuple[float, float]  # brightness augmentation range
    kb_crop: bool = False  # KITTI: predict on the 352x1216 crop, paste into the full frame


PROTOCOLS: dict[str, Protocol] = {
    "nyu": Protocol("nyu", 1e-3, 10.0, "eigen", (434, 560), 0.6, (0.75, 1.25)),
    "kitti": Protocol("kitti", 1e-3, 80.0, "garg", (350, 1204), 1.0, (0.9, 1.1), kb_crop=True),
    # VOID frames are 480x640 like NYU's; the released size for NYU is used for them.
    "void": Protocol("void", 0.2, 5.0, "eigen", (434, 560), 0.6, (0.9, 1.1)),
    # C3VD depth is in millimetres (0-100) as the released protocol reads it.
    "c3vd": Protocol("c3vd", 0.1, 100.0, "none", None, 1.0, (0.9, 1.1)),
    "folder": Protocol("folder", 1e-3, 80.0, "none", None, 0.6, (0.9, 1.1)),
    "synthetic": Protocol("synthetic", 1e-3, 80.0, "none", None, 0.6, (0.9, 1.1)),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise DataError(f"Unknown dataset '{name}'. Available: {', '.join(PROTOCOLS)}.") from None


# ----------------------------------------------------------------------- file readers

def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"Image not found: {p}.")
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"Cannot decode image {p}; expected a PNG or JPEG file.")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_depth(path: str | Path, scale: float) -> np.ndarray:
    """A depth map as (H, W) float32 metres (0 = invalid).

    16-bit PNG / TIFF files are divided by ``scale`` (1000: millimetres, 256: KITTI and
    VOID); ``.npy`` files hold float metres (NaN/inf/negative become 0).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"Depth map not found: {p}.")
    if p.suffix.lower() == ".npy":
        try:
            depth = np.load(p, allow_pickle=False).astype(np.float32)
        except (ValueError, OSError) as exc:
            raise DataError(f"Cannot read depth {p}: {exc}. Save it with numpy.save as an HxW float array.") from None
        depth = np.squeeze(depth)
        depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    else:
        raw = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise DataError(f"Cannot decode depth map {p}; expected a 16-bit PNG/TIFF or a .npy file.")
        if raw.dtype != np.uint16:
            raise DataError(
                f"Depth map {p} is {raw.dtype}, expected 16-bit (uint16) values; 8-bit images cannot hold depth."
            )
        depth = raw.astype(np.float32) / scale
    if depth.ndim != 2:
        raise DataError(f"Depth map {p} must be single-channel HxW; got shape {depth.shape}.")
    return depth


def resize_nearest(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a depth map (never blends valid and invalid pixels)."""
    if depth.shape == tuple(size):
        return depth
    return cv2.resize(depth, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def kb_crop_box(shape: tuple[int, int]) -> tuple[int, int]:
    """(top, left) of KITTI's 352x1216 benchmark crop in a frame of ``shape``."""
    h, w = shape
    if h < KB_CROP[0] or w < KB_CROP[1]:
        raise DataError(f"KITTI frames must be at least 352x1216 for the KB crop; got {h}x{w}.")
    return h - KB_CROP[0], (w - KB_CROP[1]) // 2


# ----------------------------------------------------------------------- base class

@dataclass
class SampleRef:
    """Where one sample lives: its image, its depth, and the caption key ``rel``."""

    image: Path
    depth: Path | None
    rel: str  # image path relative to the image root, without extension


class DepthDataset(Dataset):
    """Base of every reader; subclasses fill ``self.samples`` and may override :meth:`load`.

    Args:
        name: protocol name (nyu, kitti, void, c3vd, folder, synthetic).
        split: split name, used in messages and the default caption folder.
        captions: where the captions come from.
        size: training resize (height, width); None keeps the native size.
        augment: augmentation ranges, or None for no augmentation.
        depth_scale: divisor of 16-bit depth files.
    """

    def __init__(
        self,
        name: str,
        split: str,
        captions: CaptionSource,
        size: tuple[int, int] | None = None,
        augment: AugmentConfig | None = None,
        depth_scale: float = 1000.0,
    ) -> None:
        self.protocol = get_protocol(name)
        self.name = name
        self.split = split
        self.captions = captions
        self.size = tuple(size) if size is not None else None
        self.augment = augment
        self.depth_scale = depth_scale
        self.samples: list[SampleRef] = []

    def __len__(self) -> int:
        return len(self.samples)

    def _require_samples(self, where: Path) -> None:
        if not self.samples:
            raise DataError(
                f"No {self.name} samples found for split '{self.split}' under {where}. "
                "Check --root and the split name against the layout in the docs."
            )

    # -- overridable pieces
    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Native (RGB uint8 (H, W, 3), depth float32 metres (H, W)) of one sample."""
        ref = self.samples[index]
        image = read_rgb(ref.image)
        depth = read_depth(ref.depth, self.depth_scale) if ref.depth is not None else np.zeros(image.shape[:2], np.float32)
        if depth.shape != image.shape[:2]:
            raise DataError(
                f"{ref.depth} is {depth.shape[1]}x{depth.shape[0]} but its image {ref.image} is "
                f"{image.shape[1]}x{image.shape[0]}; depth and image must be aligned pixel for pixel."
            )
        return image, depth

    def caption_lines(self, index: int) -> list[str]:
        return self.captions.lines(self.samples[index].rel, index)

    def group(self, index: int) -> str:
        """A label of the scene kind (the dataset name; synthetic scenes give their family)."""
        return self.name

    # -- the torch Dataset protocol
    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (int(key), None)
        if not 0 <= index < len(self):
            raise InputError(f"Sample index {index} is out of range for {self.name} ({len(self)} samples).")
        image_u8, depth = self.load(index)
        rng = np.random.default_rng(seed) if seed is not None else None
        caption = pick_caption(self.caption_lines(index), rng)
        image = image_u8.astype(np.float32) / 255.0
        if seed is not None and self.protocol.kb_crop:
            top, left = kb_crop_box(depth.shape)
            image = image[top:top + KB_CROP[0], left:left + KB_CROP[1]]
            depth = depth[top:top + KB_CROP[0], left:left + KB_CROP[1]]
        if rng is not None and self.augment is not None:
            image, depth, caption = augment_sample(image, depth, caption, self.augment, rng)
        if seed is not None and self.size is not None and image.shape[:2] != self.size:
            image = resize_bilinear(image, self.size)
            depth = resize_nearest(depth, self.size)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)),
            "depth": torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None],
            "caption": caption,
            "index": index,
            "group": self.group(index),
        }
