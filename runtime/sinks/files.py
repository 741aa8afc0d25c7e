"""``--save-depth DIR``: 16-bit PNG depth, optional .npy in metres, JSON lines.

Per frame ``N``: ``DIR/N.png`` (uint16 = round(depth_m x ``png_scale``); the default
scale 1000 stores millimetres, so depths above 65.535 m saturate at 65535: a warning is
logged once and every record counts its clipped pixels; use ``--png-scale 100``
(centimetres, up to 655.35 m) or ``--save-npy`` for exact far values), ``DIR/N.npy``
(float32 metres, exact) and one line in ``DIR/frames.jsonl``: index, timestamp,
min/median/max depth (m), latency (ms), caption, ``png_scale`` (PNG units per metre:
depth_m = png / png_scale) and ``png_clipped``. Images are written to a temp file and
renamed, and the JSON line is appended after them in one write, so every line names
complete files (also after a SIGKILL). A run replaces the folder's ``frames.jsonl``
(atomically, when it starts), and holds ``DIR/.lock`` so that a second run into the same
folder is refused. Inputs the source could not use are listed as
``{"skipped": ..., "reason": ...}`` lines.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
from pathlib import Path

import numpy as np

from tr2m_edge.errors import InputError, OutputError
from tr2m_edge.fileio import prepare_output_dir, write_bytes_atomic
from tr2m_edge.runtime.results import MetricDepth
from tr2m_edge.runtime.sinks.base import Sink

log = logging.getLogger(__name__)
MM_PER_M = 1000.0  # the default PNG scale: millimetres
PNG_MAX = 65535
LOCK = ".lock"  # held (flock) by the run writing into the folder


def depth_to_png16(depth: np.ndarray, scale: float = MM_PER_M) -> bytes:
    """(H, W) metres -> 16-bit PNG bytes of round(depth x ``scale``), clipped to 0..65535."""
    import cv2

    units = np.clip(np.rint(depth.astype(np.float64) * scale), 0, PNG_MAX).astype(np.uint16)
    ok, buf = cv2.imencode(".png", units)
    if not ok:
        raise InputError("OpenCV could not encode a 16-bit PNG.")
    return buf.tobytes()


def png_clipped(depth: np.ndarray, scale: float = MM_PER_M) -> int:
    """Pixels :func:`depth_to_png16` saturates at 65535 (depth above 65535 / ``scale`` metres)."""
    return int(np.count_nonzero(np.rint(depth.astype(np.float64) * scale) > PNG_MAX))


class DepthFileSink(Sink):
    """Writes depth maps and per-frame records into ``folder``."""

    name = "save-depth"

    def __init__(self, folder: str | Path, *, npy: bool = False, png: bool = True, png_scale: float = MM_PER_M) -> None:
        if not png_scale > 0:
            raise InputError(f"--png-scale must be > 0 (PNG units per metre, 1000 = millimetres); got {png_scale}.")
        self.png_scale = float(png_scale)
        self.clipped = 0  # PNG pixels saturated so far (depth above 65535 / png_scale metres)
        self.folder = prepare_output_dir(folder, "--save-depth")
        self.npy = npy
        self.png = png
        self._lock = self._take_lock()
        self.records = self.folder / "frames.jsonl"
        write_bytes_atomic(self.records, b"")  # a run replaces the folder's records, never appends to them
        self._fd = os.open(self.records, os.O_WRONLY | os.O_APPEND)
        self.written = 0

    def _take_lock(self) -> int:
        """An exclusive lock on ``folder/.lock``: two runs never write into the same folder at once."""
        fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise OutputError(f"--save-depth {self.folder} is in use by another run (pid {owner}); "
                              "wait for it or choose another folder.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return fd

    def write(self, result: MetricDepth) -> None:
        stem = f"{result.index:06d}"
        record = result.summary()
        if self.png:
            write_bytes_atomic(self.folder / f"{stem}.png", depth_to_png16(result.depth, self.png_scale))
            clipped = png_clipped(result.depth, self.png_scale)
            if clipped and not self.clipped:
                log.warning("16-bit PNG depth saturates above %.3f m (png_scale %g units/m): %d pixel(s) of frame %d "
                            "clipped; counted per frame in frames.jsonl ('png_clipped'). The .npy files (--save-npy) "
                            "keep exact metres; --png-scale 100 stores centimetres up to 655 m.",
                            PNG_MAX / self.png_scale, self.png_scale, clipped, result.index)
            self.clipped += clipped
            record.update(png=f"{stem}.png", png_scale=self.png_scale, png_clipped=clipped)
        if self.npy:
            buf = io.BytesIO()
            np.save(buf, result.depth.astype(np.float32))
            write_bytes_atomic(self.folder / f"{stem}.npy", buf.getvalue())
            record["npy"] = f"{stem}.npy"
        os.write(self._fd, (json.dumps(record) + "\n").encode())
        self.written += 1

    def note_skipped(self, items: list[dict[str, str]]) -> None:
        """One ``{"skipped": file, "reason": why}`` line per input the source could not use."""
        for item in items:
            os.write(self._fd, (json.dumps({"skipped": item["item"], "reason": item["reason"]}) + "\n").encode())

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
        if self._lock >= 0:
            os.close(self._lock)  # releases the flock
            self._lock = -1
