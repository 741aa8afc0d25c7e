"""``--save-depth DIR``: 16-bit PNG depth in millimetres, optional .npy in metres, JSON lines.

Per frame ``N``: ``DIR/N.png`` (uint16, millimetres, 0..65535 so depths beyond 65.535 m
saturate: keep ``--save-npy`` for exact far values), ``DIR/N.npy`` (float32 metres) and
one line in ``DIR/frames.jsonl``: index, timestamp, min/median/max depth (m), latency
(ms), caption. Images are written to a temp file and renamed, and the JSON line is
appended after them in one write, so every line names complete files.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from tr2m_edge.errors import InputError
from tr2m_edge.runtime.results import MetricDepth
from tr2m_edge.fileio import write_bytes_atomic
from tr2m_edge.runtime.sinks.base import Sink

MM_PER_M = 1000.0


def depth_to_png16(depth: np.ndarray) -> bytes:
    """(H, W) metres -> 16-bit PNG bytes in millimetres (rounded, clipped to 0..65535)."""
    import cv2

    mm = np.clip(np.rint(depth.astype(np.float64) * MM_PER_M), 0, 65535).astype(np.uint16)
    ok, buf = cv2.imencode(".png", mm)
    if not ok:
        raise InputError("OpenCV could not encode a 16-bit PNG.")
    return buf.tobytes()


class DepthFileSink(Sink):
    """Writes depth maps and per-frame records into ``folder``."""

    name = "save-depth"

    def __init__(self, folder: str | Path, *, npy: bool = False, png: bool = True) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"Cannot create the depth folder {self.folder}: {exc.strerror}.") from None
        self.npy = npy
        self.png = png
        self.records = self.folder / "frames.jsonl"
        self._fd = os.open(self.records, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.written = 0

    def write(self, result: MetricDepth) -> None:
        stem = f"{result.index:06d}"
        record = result.summary()
        if self.png:
            write_bytes_atomic(self.folder / f"{stem}.png", depth_to_png16(result.depth))
            record["png"] = f"{stem}.png"
        if self.npy:
            buf = io.BytesIO()
            np.save(buf, result.depth.astype(np.float32))
            write_bytes_atomic(self.folder / f"{stem}.npy", buf.getvalue())
            record["npy"] = f"{stem}.npy"
        os.write(self._fd, (json.dumps(record) + "\n").encode())
        self.written += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
