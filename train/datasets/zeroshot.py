"""Readers of the zero-shot evaluation sets in their public layouts (as the released eval_zero.py reads them).

Each set has one caption file with one line per sample, in the order the reader lists its
samples (the released ``text/text_all/<set>/<set>_all.txt``). It is looked for at
``ROOT/text/<set>/<file>``, ``ROOT/text/text_all/<set>/<file>`` and ``ROOT/<file>``, or
given with ``captions``; SimCol needs none (the released code gives every frame one fixed
caption). Sizes, caps and crops are in :data:`tr2m_edge.train.datasets.base.PROTOCOLS`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from tr2m_edge.errors import DataError
from tr2m_edge.train.augment import AugmentConfig
from tr2m_edge.train.captions import CaptionSource
from tr2m_edge.train.datasets.base import (DepthDataset, SampleRef, check_aligned, find_split_file, read_rgb,
                                           split_dirs_text, split_lines)

log = logging.getLogger(__name__)
HYPERSIM_FOCAL = 886.81  # pixels, of HyperSim's 1024x768 renders
HYPERSIM_SIZE = (768, 1024)
SIMCOL_CAPTION = "The image shows a medical scene of a cecum with texture type one."  # released, every frame
CAPTION_FILES = {  # dataset -> (released folder under text/text_all/, file name)
    "sunrgbd": ("sunrgbd", "sunrgbd_all.txt"),
    "ibims": ("ibims1", "ibims1_all.txt"),
    "diode_outdoor": ("diode_outdoor", "diode_outdoor_all.txt"),
    "hypersim": ("hypersim", "hypersim_all.txt"),
    "simcol": ("simcol", "simcol_all.txt"),
}


def zero_shot_captions(root: Path, name: str, captions: CaptionSource | None, default: str | None) -> CaptionSource:
    """The caption source of a zero-shot set: ``captions``, else its caption file, else ``default``."""
    if captions is not None:
        return captions
    folder, file = CAPTION_FILES[name]
    candidates = (root / "text" / folder / file, root / "text" / "text_all" / folder / file, root / file)
    found = next((c for c in candidates if c.is_file()), None)
    if found is not None:
        return CaptionSource(found, default)
    if default is not None:
        return CaptionSource(None, default)
    raise DataError(
        f"No caption file for {name}: expected {candidates[0]} (one caption per line, in loader order; the "
        f"released text/text_all/{folder}/{file}). Pass --captions FILE or --default-caption TEXT."
    )


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"No {what}: expected {path}.")
    return path


class _ZeroShot(DepthDataset):
    """Shared constructor: root check, captions from :func:`zero_shot_captions`."""

    def __init__(self, name: str, root: str | Path, split: str, captions: CaptionSource | None,
                 size: tuple[int, int] | None, augment: AugmentConfig | None, default_caption: str | None,
                 depth_scale: float = 1000.0) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"Dataset root {self.root} does not exist or is not a folder (dataset '{name}').")
        super().__init__(name, split, zero_shot_captions(self.root, name, captions, default_caption), size, augment,
                         depth_scale)

    def _check_captions(self) -> None:
        lines = getattr(self.captions, "_per_sample", None)
        if lines is not None and len(lines) != len(self.samples):
            log.warning("%s: caption file %s has %d lines for %d samples; captions follow loader order, so "
                        "check that it belongs to this copy of the set.", self.name, self.captions.location,
                        len(lines), len(self.samples))


class SunRgbdDataset(_ZeroShot):
    """SUN RGB-D with the released test lists (depth: 16-bit PNG / 10000 metres, > 8 m dropped)::

        sunrgbd_testing_images.txt   one image path per line, relative to ROOT  } in ROOT, its split
        sunrgbd_testing_depths.txt   the matching depth paths                   } folders or
                                                                                  ROOT/data_splits/sunrgbd/

    Evaluated at 518x728, Eigen crop (rows 45:471, cols 41:601 of the native frame), 8 m cap.
    """

    def __init__(self, root: str | Path, split: str = "test", captions: CaptionSource | None = None,
                 size: tuple[int, int] | None = None, augment: AugmentConfig | None = None,
                 default_caption: str | None = None) -> None:
        super().__init__("sunrgbd", root, split, captions, size, augment, default_caption, 10000.0)
        tag = {"test": "testing", "train": "training"}.get(split, split)
        names = (f"sunrgbd_{tag}_images.txt", f"sunrgbd_{tag}_depths.txt")
        images, depths = (find_split_file(self.root, (n,), self.protocol.data_splits) for n in names)
        if images is None or depths is None:
            raise DataError(f"No SUN RGB-D split files for '{split}': expected {names[0]} and {names[1]} in "
                            f"{self.root} or its {split_dirs_text(self.protocol.data_splits)} folder.")
        image_lines, depth_lines = [ln[0] for ln in split_lines(images)], [ln[0] for ln in split_lines(depths)]
        if len(image_lines) != len(depth_lines):
            raise DataError(f"{images} lists {len(image_lines)} images but {depths} lists {len(depth_lines)} depth maps.")
        for image, depth in zip(image_lines, depth_lines):
            self.samples.append(SampleRef(self.root / image.lstrip("/"), self.root / depth.lstrip("/"), image))
        self._require_samples(images)
        self._check_captions()

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, depth = super().load(index)
        depth[depth > 8.0] = 0.0  # released: invalid beyond the 8 m cap
        return image, depth


class IbimsDataset(_ZeroShot):
    """iBims-1 (core, raw) with its masks (depth: 16-bit PNG * 50 / 65535 metres)::

        ROOT/imagelist.txt                 the sample names, whitespace-separated
        ROOT/rgb/<name>.png, depth/<name>.png, mask_invalid/<name>.png, mask_transp/<name>.png

    Pixels where either mask is 0 have no ground truth. Evaluated at 434x560, Eigen crop,
    10 m cap, and, like the released loader, without the ImageNet normalisation.
    """

    def __init__(self, root: str | Path, split: str = "test", captions: CaptionSource | None = None,
                 size: tuple[int, int] | None = None, augment: AugmentConfig | None = None,
                 default_caption: str | None = None) -> None:
        super().__init__("ibims", root, split, captions, size, augment, default_caption, 65535.0 / 50.0)
        listing = _require_file(self.root / "imagelist.txt", "iBims image list")
        for name in listing.read_text().split():
            self.samples.append(SampleRef(self.root / "rgb" / f"{name}.png", self.root / "depth" / f"{name}.png", name))
        self._require_samples(listing)
        self._check_captions()

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, depth = super().load(index)
        name = self.samples[index].rel
        for folder in ("mask_invalid", "mask_transp"):
            path = _require_file(self.root / folder / f"{name}.png", f"iBims {folder} mask")
            mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if mask is None or mask.shape[:2] != depth.shape:
                raise DataError(f"{path} must be a {depth.shape[1]}x{depth.shape[0]} mask image like its depth map.")
            depth[(mask if mask.ndim == 2 else mask[:, :, 0]) == 0] = 0.0
        return image, depth


class DiodeDataset(_ZeroShot):
    """DIODE outdoor (depth: ``<name>_depth.npy`` float metres, (768, 1024, 1))::

        ROOT/<scene>/<scan>/<name>.png + <name>_depth.npy + <name>_depth_mask.npy

    ROOT is ``DIODE/val/outdoor`` (or ``DIODE`` itself, then ``<split>/outdoor`` is used).
    The image is resized to 480x640 (antialiased) by the loader and to 434x560 for the
    model; ground truth stays 768x1024 and is scored with the Garg crop, 80 m cap. The
    released evaluation loads the depth mask but scores by the valid range and the crop
    only; so does this reader (the mask file is not read).
    Samples are sorted by path (the released loader uses unsorted glob order).
    """

    def __init__(self, root: str | Path, split: str = "val", captions: CaptionSource | None = None,
                 size: tuple[int, int] | None = None, augment: AugmentConfig | None = None,
                 default_caption: str | None = None) -> None:
        base = Path(root)
        if (base / split / "outdoor").is_dir():
            base = base / split / "outdoor"
        super().__init__("diode_outdoor", base, split, captions, size, augment, default_caption)
        for image in sorted(self.root.glob("*/*/*.png")):
            self.samples.append(SampleRef(image, image.with_name(image.stem + "_depth.npy"),
                                          str(image.relative_to(self.root).with_suffix(""))))
        self._require_samples(self.root)
        self._check_captions()


class HypersimDataset(_ZeroShot):
    """HyperSim (depth: HDF5 ``dataset`` of Euclidean distance in metres, 768x1024)::

        ROOT/<scene>/images/scene_cam_XX_final_preview/frame.NNNN.tonemap.jpg
        ROOT/<scene>/images/scene_cam_XX_geometry_hdf5/frame.NNNN.depth_meters.hdf5

    Distance becomes planar depth with the released conversion (focal 886.81 px on the
    1024x768 grid). The image is resized to 480x640 (antialiased) and then 434x560; ground
    truth stays 768x1024, no crop, 80 m cap. Needs h5py (``pip install h5py``).
    """

    def __init__(self, root: str | Path, split: str = "test", captions: CaptionSource | None = None,
                 size: tuple[int, int] | None = None, augment: AugmentConfig | None = None,
                 default_caption: str | None = None) -> None:
        super().__init__("hypersim", root, split, captions, size, augment, default_caption)
        for image in sorted(self.root.glob("*/images/scene_cam_*_final_preview/*.tonemap.jpg")):
            depth = image.parent.with_name(image.parent.name.replace("_final_preview", "_geometry_hdf5"))
            depth = depth / image.name.replace(".tonemap.jpg", ".depth_meters.hdf5")
            self.samples.append(SampleRef(image, depth, str(image.relative_to(self.root))[:-len(".tonemap.jpg")]))
        self._require_samples(self.root)
        self._check_captions()

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        ref = self.samples[index]
        image = read_rgb(ref.image)
        depth = hypersim_planar_depth(read_hdf5_distance(_require_file(ref.depth, "HyperSim depth")))
        check_aligned(image, depth, ref)
        return image, depth


def read_hdf5_distance(path: Path) -> np.ndarray:
    """The ``dataset`` array of a HyperSim ``*.depth_meters.hdf5`` file, float32 (768, 1024)."""
    try:
        import h5py
    except ImportError:
        raise DataError("Reading HyperSim depth needs h5py: pip install h5py (or tr2m-edge[train]).") from None
    try:
        with h5py.File(path, "r") as f:
            distance = np.asarray(f["dataset"], dtype=np.float32)
    except (OSError, KeyError) as exc:
        raise DataError(f"Cannot read {path}: {exc}. Expected a HyperSim depth_meters.hdf5 file.") from None
    if distance.shape != HYPERSIM_SIZE:
        raise DataError(f"{path} holds a {distance.shape} array; HyperSim depth is {HYPERSIM_SIZE[0]}x{HYPERSIM_SIZE[1]}.")
    return distance


def hypersim_planar_depth(distance: np.ndarray) -> np.ndarray:
    """Euclidean distance from the camera centre (768, 1024) -> planar depth (z), metres; NaN -> 0.

    Each pixel's ray through the image plane at focal length f = 886.81 px: depth =
    distance * f / |(x, y, f)| with pixel-centre coordinates x, y relative to the image centre.
    """
    h, w = HYPERSIM_SIZE
    x = np.linspace(-0.5 * w + 0.5, 0.5 * w - 0.5, w, dtype=np.float32)[None, :]
    y = np.linspace(-0.5 * h + 0.5, 0.5 * h - 0.5, h, dtype=np.float32)[:, None]
    norm = np.sqrt(x ** 2 + y ** 2 + np.float32(HYPERSIM_FOCAL) ** 2)
    depth = distance / norm * np.float32(HYPERSIM_FOCAL)
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    return depth.astype(np.float32)


class SimcolDataset(_ZeroShot):
    """SimCol3D (depth: 16-bit PNG, value * 200 / (255 * 256) millimetres, as the released code reads it)::

        ROOT/misc/test_file.txt            one '<SyntheticColon_X>/<Frames_YY>' per line
        ROOT/<SyntheticColon_X>/<Frames_YY>/FrameBuffer_NNNN.png + Depth_NNNN.png

    The image is resized to 480x640 (PIL, antialiased) and then 434x560; ground truth stays
    at its native size, no crop, scored in (0.1, 100) mm. Every frame gets the released
    caption "The image shows a medical scene of a cecum with texture type one." unless a
    caption file is given.
    """

    depth_channel0 = True  # the released loader reads the depth with OpenCV's colour flag, channel 0

    def __init__(self, root: str | Path, split: str = "test", captions: CaptionSource | None = None,
                 size: tuple[int, int] | None = None, augment: AugmentConfig | None = None,
                 default_caption: str | None = None) -> None:
        super().__init__("simcol", root, split, captions, size, augment, default_caption or SIMCOL_CAPTION,
                         255.0 * 256.0 / 200.0)
        listing = _require_file(self.root / "misc" / f"{split}_file.txt", f"SimCol {split} list")
        for line in listing.read_text().splitlines():
            folder = line.strip().rstrip(",/")  # the released reader drops one trailing character
            if not folder:
                continue
            for image in sorted((self.root / folder).glob("FrameBuffer*.png")):
                depth = image.with_name(f"Depth_{int(image.name[12:16]):04d}.png")
                if depth.is_file():
                    self.samples.append(SampleRef(image, depth, str(image.relative_to(self.root).with_suffix(""))))
        self._require_samples(listing)
        self._check_captions()


__all__ = ["SunRgbdDataset", "IbimsDataset", "DiodeDataset", "HypersimDataset", "SimcolDataset",
           "hypersim_planar_depth", "zero_shot_captions"]
