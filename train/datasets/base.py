"""Dataset base class, per-dataset protocols and file readers (the folder format is in folder.py).

Every reader is a torch ``Dataset`` of dicts::

    {"image": (3, H, W) float32 RGB in [0, 1], "depth": (1, h, w) float32 metres (0 = no
     ground truth), "caption": str, "index": int, "group": str}

Indexing with an ``int`` gives the evaluation view: the frame as the released loader
hands it to the model (KITTI: the 352x1216 KB crop; C3VD, DIODE, HyperSim and SimCol:
the image resized to 480x640 with antialiasing), caption line 0, no augmentation. Image
and depth have the same size except where the released loader resizes the image only
(DIODE, HyperSim, SimCol: ground truth stays at its native size and the prediction is
resized to it). Indexing with ``(index, seed)`` gives the training view: a random caption
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
NYU_FRAME = (480, 640)  # NYUv2 frame size, the frames the released training GT box applies to
NYU_GT_BOX = (45, 472, 43, 608)  # rows r0:r1, cols c0:c1 of NYU training ground truth kept
SPLIT_DIRS = ("", "splits", "data_splits", "train_test_inputs")  # where split files are looked for
RESIZE_KINDS = ("pil", "tensor")


@dataclass(frozen=True)
class Protocol:
    """How a dataset is trained on and evaluated (released TR2M loaders and evaluation code)."""

    name: str
    min_depth: float  # valid ground truth lies strictly inside (min, max); predictions clipped to it
    max_depth: float  # (metres; C3VD and SimCol: millimetres, as the released code scores them)
    crop: str  # evaluation mask, a name understood by tr2m_edge.metrics.crop_mask
    input_size: tuple[int, int] | None  # released evaluation input size; None: the model's own
    variance_focus: float  # SILog lambda
    brightness: tuple[float, float]  # brightness augmentation range
    kb_crop: bool = False  # KITTI: image AND ground truth cropped to 352x1216 first, in both views
    loader_size: tuple[int, int] | None = None  # the loader resizes the image to this (antialiased)
    loader_resize: str = "pil"  # how: "pil" (PIL bilinear, uint8) or "tensor" (torchvision, float)
    resize_depth: bool = False  # the loader resizes the ground truth to loader_size too (nearest)
    normalize: bool = True  # ImageNet mean/std at evaluation (the released iBims loader feeds [0, 1])
    train_gt_box: tuple[int, int, int, int] | None = None  # training GT kept in rows r0:r1, cols c0:c1
    data_splits: str = ""  # folder of the released split files: ROOT/data_splits/<this>/


_OUT = (0.9, 1.1)  # brightness range of every set but NYU
PROTOCOLS: dict[str, Protocol] = {
    "nyu": Protocol("nyu", 1e-3, 10.0, "eigen", (434, 560), 0.6, (0.75, 1.25), train_gt_box=NYU_GT_BOX,
                    data_splits="nyudepthv2"),
    "kitti": Protocol("kitti", 1e-3, 80.0, "garg", (350, 1204), 1.0, _OUT, kb_crop=True, data_splits="kitti"),
    # VOID frames are 480x640 like NYU's; the released size for NYU is used for them.
    "void": Protocol("void", 0.2, 5.0, "eigen", (434, 560), 0.6, _OUT, data_splits="void"),
    # C3VD depth is in millimetres (0-100) as the released protocol reads it; frames 480x640.
    "c3vd": Protocol("c3vd", 0.1, 100.0, "none", (434, 560), 1.0, _OUT, loader_size=(480, 640),
                     resize_depth=True, data_splits="c3vd"),
    "folder": Protocol("folder", 1e-3, 80.0, "none", None, 0.6, _OUT),
    "synthetic": Protocol("synthetic", 1e-3, 80.0, "none", None, 0.6, _OUT),
    # zero-shot sets (released eval_zero.py; evaluation only)
    "sunrgbd": Protocol("sunrgbd", 1e-3, 8.0, "eigen", (518, 728), 0.6, _OUT, data_splits="sunrgbd"),
    "ibims": Protocol("ibims", 1e-3, 10.0, "eigen", (434, 560), 0.6, _OUT, normalize=False),
    "diode_outdoor": Protocol("diode_outdoor", 1e-3, 80.0, "garg", (434, 560), 1.0, _OUT,
                              loader_size=(480, 640), loader_resize="tensor"),
    "hypersim": Protocol("hypersim", 1e-3, 80.0, "none", (434, 560), 0.6, _OUT,
                         loader_size=(480, 640), loader_resize="tensor"),
    # SimCol depth in millimetres (0-200 encoded), scored in (0.1, 100) like C3VD.
    "simcol": Protocol("simcol", 0.1, 100.0, "none", (434, 560), 1.0, _OUT, loader_size=(480, 640)),
    # a teacher's metric depth as the target (distillation): absolute scale counts, so SILog's lambda is 0
    "teacher": Protocol("teacher", 1e-3, 1e4, "none", None, 0.0, _OUT),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise DataError(f"Unknown dataset '{name}'. Available: {', '.join(PROTOCOLS)}.") from None


# ----------------------------------------------------------------------- split files

def find_split_file(root: Path, names: tuple[str, ...], released_dir: str = "") -> Path | None:
    """The first of ``names`` found in ROOT, its split folders, or ROOT/data_splits/<released_dir>/."""
    folders = SPLIT_DIRS + ((f"data_splits/{released_dir}",) if released_dir else ())
    for folder in folders:
        for name in names:
            p = root / folder / name
            if p.is_file():
                return p
    return None


def split_dirs_text(released_dir: str = "") -> str:
    """Where :func:`find_split_file` looks, for messages."""
    dirs = [f"{d}/" for d in SPLIT_DIRS if d] + ([f"data_splits/{released_dir}/"] if released_dir else [])
    return ", ".join(dirs)


def split_lines(path: Path) -> list[list[str]]:
    """The whitespace-split, non-empty, non-comment lines of a split file."""
    return [ln.split() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def rel_name(path: str) -> str:
    """A split-file path as a caption key: relative, forward slashes, no extension."""
    return str(Path(path.lstrip("/")).with_suffix("")).replace("\\", "/")


# ----------------------------------------------------------------------- file readers

def _imread(path: str | Path, flags: int, what: str, expected: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what} not found: {p}.")
    img = cv2.imread(str(p), flags)
    if img is None:
        raise DataError(f"Cannot decode {what.lower()} {p}; expected {expected}.")
    return img


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB."""
    return cv2.cvtColor(_imread(path, cv2.IMREAD_COLOR, "Image", "a PNG or JPEG file"), cv2.COLOR_BGR2RGB)


def read_uint16(path: str | Path, channel0: bool = False) -> np.ndarray:
    """A 16-bit PNG/TIFF as (H, W) uint16; ``channel0`` takes the first channel of a 3-channel file."""
    raw = _imread(path, cv2.IMREAD_UNCHANGED, "Depth map", "a 16-bit PNG/TIFF or a .npy file")
    if raw.dtype != np.uint16:
        raise DataError(f"Depth map {path} is {raw.dtype}, expected 16-bit (uint16) values; 8-bit images cannot hold depth.")
    if raw.ndim == 3 and channel0:
        raw = raw[:, :, 0]
    if raw.ndim != 2:
        raise DataError(f"Depth map {path} must be single-channel HxW; got shape {raw.shape}.")
    return raw


def read_depth(path: str | Path, scale: float, channel0: bool = False) -> np.ndarray:
    """A depth map as (H, W) float32 metres (0 = invalid).

    16-bit PNG / TIFF files are divided by ``scale`` (1000: millimetres, 256: KITTI and
    VOID; ``channel0``: of a 3-channel file, the first channel, as OpenCV's colour read
    gives it); ``.npy`` files hold float metres (NaN/inf/negative become 0).
    """
    p = Path(path)
    if p.suffix.lower() != ".npy":
        return read_uint16(p, channel0).astype(np.float32) / scale
    if not p.is_file():
        raise DataError(f"Depth map not found: {p}.")
    try:
        depth = np.load(p, allow_pickle=False).astype(np.float32)
    except (ValueError, OSError) as exc:
        raise DataError(f"Cannot read depth {p}: {exc}. Save it with numpy.save as an HxW float array.") from None
    depth = np.squeeze(depth)
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    if depth.ndim != 2:
        raise DataError(f"Depth map {p} must be single-channel HxW; got shape {depth.shape}.")
    return depth


def resize_nearest(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a depth map (never blends valid and invalid pixels).

    OpenCV's rule, as the released loaders use: output pixel i takes source floor(i * in / out).
    """
    if depth.shape == tuple(size):
        return depth
    return cv2.resize(depth, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def resize_antialias(image: np.ndarray, size: tuple[int, int], kind: str = "pil") -> np.ndarray:
    """Antialiased bilinear resize of an (H, W, 3) uint8 image -> float32 RGB in [0, 1].

    ``kind`` follows the released loader: "pil" resizes the uint8 image with PIL's bilinear
    filter (C3VD, SimCol: ``transforms.Resize`` on a PIL image), "tensor" the float image
    with torch's antialiased bilinear (DIODE, HyperSim: ``transforms.Resize`` on a tensor).
    The two differ by at most one grey level (PIL rounds to uint8).
    """
    h, w = size
    if kind == "pil":
        from PIL import Image

        return np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0
    if kind == "tensor":
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
        x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        return x[0].permute(1, 2, 0).numpy()
    raise DataError(f"Unknown loader resize '{kind}'. Available: {', '.join(RESIZE_KINDS)}.")


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
        name: protocol name (a key of :data:`PROTOCOLS`).
        split: split name, used in messages and the default caption folder.
        captions: where the captions come from.
        size: training resize (height, width); None keeps the native size.
        augment: augmentation ranges, or None for no augmentation.
        depth_scale: divisor of 16-bit depth files.
    """

    depth_channel0 = False  # 3-channel 16-bit depth files: read the first channel (C3VD, SimCol)

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
        if ref.depth is None:
            depth = np.zeros(image.shape[:2], np.float32)
        else:
            depth = read_depth(ref.depth, self.depth_scale, self.depth_channel0)
        check_aligned(image, depth, ref)
        return image, depth

    def caption_lines(self, index: int) -> list[str]:
        return self.captions.lines(self.samples[index].rel, index)

    def group(self, index: int) -> str:
        """A label of the scene kind (the dataset name; synthetic scenes give their family)."""
        return self.name

    def loader_view(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The sample as the released loader hands it on: (image float32 (H, W, 3) in [0, 1],
        depth float32 (h, w)), after the KB crop and the loader resize of its protocol."""
        image_u8, depth = self.load(index)
        proto = self.protocol
        if proto.kb_crop:
            top, left = kb_crop_box(depth.shape)
            image_u8 = image_u8[top:top + KB_CROP[0], left:left + KB_CROP[1]]
            depth = depth[top:top + KB_CROP[0], left:left + KB_CROP[1]]
        if proto.loader_size is not None and image_u8.shape[:2] != tuple(proto.loader_size):
            image = resize_antialias(image_u8, proto.loader_size, proto.loader_resize)
        else:
            image = image_u8.astype(np.float32) / 255.0
        if proto.loader_size is not None and proto.resize_depth:
            depth = resize_nearest(depth, proto.loader_size)
        return image, depth

    # -- the torch Dataset protocol
    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (int(key), None)
        if not 0 <= index < len(self):
            raise InputError(f"Sample index {index} is out of range for {self.name} ({len(self)} samples).")
        image, depth = self.loader_view(index)
        rng = np.random.default_rng(seed) if seed is not None else None
        caption = pick_caption(self.caption_lines(index), rng)
        box = self.protocol.train_gt_box
        if seed is not None and box is not None and depth.shape == NYU_FRAME:
            kept = np.zeros_like(depth)
            kept[box[0]:box[1], box[2]:box[3]] = depth[box[0]:box[1], box[2]:box[3]]
            depth = kept
        if rng is not None and self.augment is not None:
            image, depth, caption = augment_sample(image, depth, caption, self.augment, rng)
        if seed is not None and self.size is not None:
            if image.shape[:2] != self.size:
                image = resize_bilinear(image, self.size)
            depth = resize_nearest(depth, self.size)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)),
            "depth": torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None],
            "caption": caption,
            "index": index,
            "group": self.group(index),
        }


def check_aligned(image: np.ndarray, depth: np.ndarray, ref: SampleRef) -> None:
    """DataError unless depth and image have the same height and width."""
    if depth.shape != image.shape[:2]:
        raise DataError(
            f"{ref.depth} is {depth.shape[1]}x{depth.shape[0]} but its image {ref.image} is "
            f"{image.shape[1]}x{image.shape[0]}; depth and image must be aligned pixel for pixel."
        )
