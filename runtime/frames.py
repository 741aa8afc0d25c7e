"""Frames as the runtime passes them around, and the guard that makes any frame usable.

:class:`FrameConformer` turns whatever a source delivers into the RGB uint8 frame the
bundle expects: grey and RGBA frames gain/lose channels, 16-bit and float frames are
scaled to 8 bits, frames of another size are resized to the bundle's fixed frame size.
Frames it cannot use (empty, wrong rank, 2+ channels that are not 3/4) are skipped.
Every conversion and skip is counted and warned about once per kind, never a crash.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class Frame:
    """One captured frame.

    Attributes:
        rgb: (H, W, 3) uint8 RGB.
        index: position in the stream (0-based, counts every frame the source delivered).
        timestamp: capture time, seconds since the epoch.
        t_capture: ``time.perf_counter()`` at capture (latency measurements).
        depth_gt: ground-truth metres (H, W) when the source has it (synthetic scenes).
    """

    rgb: np.ndarray
    index: int
    timestamp: float = field(default_factory=time.time)
    t_capture: float = field(default_factory=time.perf_counter)
    depth_gt: np.ndarray | None = None
    caption: str | None = None


class FrameConformer:
    """Converts frames to (H, W, 3) uint8 RGB at ``frame_size`` (when fixed), counting what it did.

    Args:
        frame_size: (H, W) the bundle's graphs were exported for, or None to keep any size.
    """

    def __init__(self, frame_size: tuple[int, int] | None) -> None:
        self.frame_size = tuple(frame_size) if frame_size else None
        self.converted: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def num_converted(self) -> int:
        return sum(self.converted.values())

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def _note(self, counter: Counter[str], kind: str, message: str) -> None:
        with self._lock:
            first = counter[kind] == 0
            counter[kind] += 1
        if first:
            log.warning("%s (warned once; counted in the stats)", message)

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        """The conformed frame, or None when the frame is unusable (counted as skipped)."""
        if not isinstance(image, np.ndarray) or image.size == 0:
            self._note(self.skipped, "empty", "Skipping an empty or non-array frame")
            return None
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim == 2:
            self._note(self.converted, "grey", f"Converting grey frames {image.shape} to RGB")
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 2:
            self._note(self.skipped, "shape", f"Skipping frames of shape {image.shape} (expected HxWx3 RGB)")
            return None
        if image.shape[2] == 4:
            self._note(self.converted, "alpha", "Dropping the alpha channel of RGBA frames")
            image = image[:, :, :3]
        if image.dtype != np.uint8:
            image = self._to_uint8(image)
            if image is None:
                return None
        if self.frame_size is not None and image.shape[:2] != self.frame_size:
            import cv2

            self._note(
                self.converted, "size",
                f"Resizing {image.shape[1]}x{image.shape[0]} frames to the bundle's frame size "
                f"{self.frame_size[1]}x{self.frame_size[0]} (export with --frame-size to match the camera)",
            )
            image = cv2.resize(image, (self.frame_size[1], self.frame_size[0]), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(image)

    def _to_uint8(self, image: np.ndarray) -> np.ndarray | None:
        if image.dtype == np.uint16:
            self._note(self.converted, "uint16", "Scaling 16-bit frames to 8 bits")
            return (image >> 8).astype(np.uint8)
        if np.issubdtype(image.dtype, np.floating):
            finite = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
            scale = 255.0 if float(finite.max(initial=0.0)) <= 1.0 else 1.0
            self._note(self.converted, "float", f"Converting {image.dtype} frames to uint8")
            return np.clip(finite * scale + 0.5, 0, 255).astype(np.uint8)
        if np.issubdtype(image.dtype, np.integer):
            self._note(self.converted, "int", f"Clipping {image.dtype} frames to uint8")
            return np.clip(image, 0, 255).astype(np.uint8)
        self._note(self.skipped, "dtype", f"Skipping frames of dtype {image.dtype}")
        return None
