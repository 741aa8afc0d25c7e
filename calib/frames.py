"""Calibration and held-out frames from an image folder, a video or the synthetic scenes.

One seeded random order of the source's frames is cut in two: the first ``num`` usable
frames calibrate, the next ``holdout`` frames are held out for the accuracy gate. The two
sets are disjoint by construction (two slices of one order) and by content: a frame that
is byte-identical to one already taken (a duplicate file, a still video) is skipped, and
:func:`check_disjoint` checks both the identities and the pixels before anything is used.

Every frame passes the runtime's :class:`~tr2m_edge.runtime.frames.FrameConformer`, so it
is RGB uint8 at the bundle's frame size, exactly as ``run`` would feed it. Unreadable
images are skipped and counted; a source with fewer usable frames than asked for is split
in the same proportion (at least one frame each side), and one with fewer than two is an
error.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tr2m_edge.errors import CalibrationError, ConfigError, InputError
from tr2m_edge.runtime.frames import FrameConformer
from tr2m_edge.runtime.sources import IMAGE_EXTENSIONS, bgr_to_rgb

log = logging.getLogger(__name__)


@dataclass
class FrameSets:
    """The calibration frames and the held-out frames, (H, W, 3) uint8 RGB each.

    ``*_ids`` name each frame in its source (file path, video frame index, scene index);
    ``captions`` hold a frame's own caption where the source has one (synthetic scenes).
    """

    source: str
    seed: int
    calibration: list[np.ndarray] = field(default_factory=list)
    held_out: list[np.ndarray] = field(default_factory=list)
    calibration_ids: list[str] = field(default_factory=list)
    held_out_ids: list[str] = field(default_factory=list)
    calibration_captions: list[str | None] = field(default_factory=list)
    held_out_captions: list[str | None] = field(default_factory=list)
    available: int = 0  # frames the source offered
    unreadable: int = 0
    duplicates: int = 0

    def describe(self) -> dict[str, Any]:
        """The manifest's record of where the frames came from."""
        return {"source": self.source, "seed": self.seed, "calibration": len(self.calibration),
                "held_out": len(self.held_out), "available": self.available, "unreadable": self.unreadable,
                "duplicates_skipped": self.duplicates}


def _digest(frame: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(frame).tobytes() + str(frame.shape).encode()).hexdigest()


def check_disjoint(sets: FrameSets) -> None:
    """Raise CalibrationError when a held-out frame is also a calibration frame (by name or by pixels)."""
    same_id = sorted(set(sets.calibration_ids) & set(sets.held_out_ids))
    pixels = {_digest(f) for f in sets.calibration}
    same_pixels = [i for i, f in zip(sets.held_out_ids, sets.held_out) if _digest(f) in pixels]
    if same_id or same_pixels:
        raise CalibrationError(
            f"Held-out frames overlap the calibration frames ({(same_id or same_pixels)[:3]}): the accuracy gate "
            "would measure on data the quantiser has seen. This is a bug; please report it."
        )


def _split(sets: FrameSets, taken: list[tuple[str, np.ndarray, str | None]], num: int, holdout: int) -> FrameSets:
    """Cut ``taken`` (in sampling order) into calibration and held-out frames."""
    usable = len(taken)
    if usable < 2:
        raise InputError(
            f"{sets.source} gives {usable} usable frame(s) ({sets.available} found, {sets.unreadable} unreadable, "
            f"{sets.duplicates} duplicates): calibration needs at least 2 (one to calibrate, one to hold out)."
        )
    n_hold = holdout
    if usable < num + holdout:
        n_hold = min(usable - 1, max(1, round(usable * holdout / (num + holdout))))
        log.warning("%s gives %d usable frames, fewer than --num %d + --holdout %d: using %d to calibrate and %d "
                    "held out", sets.source, usable, num, holdout, usable - n_hold, n_hold)
    cut = usable - n_hold
    for part, rows in (("calibration", taken[:cut]), ("held_out", taken[cut:])):
        getattr(sets, f"{part}_ids").extend(r[0] for r in rows)
        getattr(sets, part).extend(r[1] for r in rows)
        getattr(sets, f"{part}_captions").extend(r[2] for r in rows)
    check_disjoint(sets)
    return sets


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"Image folder not found: {folder}. Pass a folder of calibration images with --images.")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise InputError(f"No images in {folder} (looked for {', '.join(IMAGE_EXTENSIONS)}, sub-folders included). "
                         "Point --images at a folder of frames from the deployment camera.")
    return files


def from_images(folder: str | Path, num: int, holdout: int, seed: int,
                frame_size: tuple[int, int] | None) -> FrameSets:
    """Frames from the images under ``folder``, visited in a seeded random order."""
    import cv2

    folder = Path(folder)
    files = _image_files(folder)
    sets = FrameSets(source=f"images {folder}", seed=seed, available=len(files))
    conform, seen = FrameConformer(frame_size), set()
    taken: list[tuple[str, np.ndarray, str | None]] = []
    for i in np.random.default_rng(seed).permutation(len(files)):
        if len(taken) == num + holdout:
            break
        path = files[int(i)]
        raw = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
        frame = conform(bgr_to_rgb(raw)) if raw is not None else None
        if frame is None:
            sets.unreadable += 1
            log.warning("Skipping unreadable image %s", path)
            continue
        key = _digest(frame)
        if key in seen:
            sets.duplicates += 1
            continue
        seen.add(key)
        taken.append((str(path.relative_to(folder)), frame, None))
    if not taken:
        raise InputError(f"None of the {len(files)} images in {folder} could be read ({sets.unreadable} unreadable): "
                         "check that they are image files OpenCV can decode.")
    return _split(sets, taken, num, holdout)


def from_video(path: str | Path, num: int, holdout: int, seed: int,
               frame_size: tuple[int, int] | None) -> FrameSets:
    """A seeded uniform sample of a video's frames (one decoding pass, no seeking).

    Every frame index gets a seeded random key; the ``num + holdout`` frames with the
    smallest keys are kept and taken in key order.
    """
    from tr2m_edge.runtime.sources import VideoSource

    source = VideoSource(path).open()
    sets = FrameSets(source=f"video {path}", seed=seed)
    conform, rng = FrameConformer(frame_size), np.random.default_rng(seed)
    heap: list[tuple[float, int, np.ndarray, str]] = []  # max-heap on the key (negated)
    try:
        index = -1
        while True:
            frame = source.read()
            if frame is None:
                break
            index += 1
            key = float(rng.random())
            rgb = conform(frame.rgb)
            if rgb is None:
                sets.unreadable += 1
                continue
            item = (-key, index, rgb, _digest(rgb))
            if len(heap) < num + holdout:
                heapq.heappush(heap, item)
            elif -key > heap[0][0]:
                heapq.heapreplace(heap, item)
    finally:
        source.close()
    sets.available = index + 1
    if not heap:
        raise InputError(f"The video {path} holds no usable frames ({sets.available} decoded, {sets.unreadable} unusable).")
    taken, seen = [], set()
    for _, i, rgb, digest in sorted(heap, key=lambda t: -t[0]):
        if digest in seen:
            sets.duplicates += 1
            continue
        seen.add(digest)
        taken.append((f"frame {i}", rgb, None))
    return _split(sets, taken, num, holdout)


def from_synthetic(num: int, holdout: int, seed: int, size: tuple[int, int]) -> FrameSets:
    """Synthetic scenes ``0 .. num - 1`` calibrate, ``num .. num + holdout - 1`` are held out (each its own seed)."""
    from tr2m_edge.synthetic import iter_scenes

    sets = FrameSets(source="synthetic scenes", seed=seed, available=num + holdout)
    taken = [(f"scene {i}", s.rgb, s.caption) for i, s in enumerate(iter_scenes(num + holdout, size=size, seed=seed))]
    return _split(sets, taken, num, holdout)


def sample_frames(*, images: str | Path | None = None, video: str | Path | None = None, synthetic: bool = False,
                  num: int = 32, holdout: int = 8, seed: int = 0, frame_size: tuple[int, int] | None = None,
                  input_size: tuple[int, int] = (140, 182)) -> FrameSets:
    """Calibration and held-out frames from exactly one source.

    Args:
        images / video / synthetic: the source (exactly one).
        num: calibration frames; holdout: held-out frames for the accuracy gate.
        seed: the sampling seed (the same seed and source give the same frames).
        frame_size: the bundle's fixed frame (H, W), or None when its frame size is dynamic.
        input_size: the network input (H, W): the synthetic scenes' size when ``frame_size`` is None.

    Raises:
        InputError: no or several sources, a missing/empty folder, nothing readable.
        ConfigError: num < 1 or holdout < 1.
    """
    given = [name for name, v in (("--images", images), ("--video", video), ("--synthetic", synthetic or None))
             if v is not None]
    if len(given) != 1:
        raise InputError(f"Give exactly one frame source (--images DIR, --video FILE or --synthetic); "
                         f"got {', '.join(given) or 'none'}.")
    if num < 1 or holdout < 1:
        raise ConfigError(f"--num and --holdout must be >= 1; got {num} and {holdout}.")
    if images is not None:
        return from_images(images, num, holdout, seed, frame_size)
    if video is not None:
        return from_video(video, num, holdout, seed, frame_size)
    return from_synthetic(num, holdout, seed, tuple(frame_size or input_size))
