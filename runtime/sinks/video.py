"""``--out FILE.mp4``: the RGB frame, (its relative depth,) its colourised metric depth side by side,
with the FPS and the caption written on top (as in the ``--show`` window).

Frames go to a hidden temp file next to the target, named by the writing process (two runs
never share one); :meth:`VideoSink.close` finalises the container (``VideoWriter.release``)
and renames it, so the target path only ever holds a complete, playable video. Temp files
of killed runs (their process is gone) are removed by the next run to the same target.
"""

from __future__ import annotations

import os
from pathlib import Path

from tr2m_edge.errors import InputError
from tr2m_edge.fileio import check_output_file, remove_stale_partials
from tr2m_edge.runtime.results import MetricDepth
from tr2m_edge.runtime.sinks.base import Sink
from tr2m_edge.runtime.sinks.overlay import FpsMeter
from tr2m_edge.runtime.sinks.render import DepthColouriser, render_panel

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


class VideoSink(Sink):
    """Writes [RGB | (relative depth) | depth | colour bar] frames to ``path`` at ``fps``.

    Args:
        colouriser: how metres become colours (default: a range that follows the scene);
            ``DepthColouriser(fixed=(lo, hi))`` keeps one range for the whole video.
        scale: integer enlargement of the panel, so labels are readable on small frames.

    Results that carry D_r (``relative``, when the run keeps the maps) get a relative-depth tile.
    The FPS written on each frame is the rate at which results reached this sink.
    """

    name = "out"

    def __init__(self, path: str | Path, fps: float = 30.0, *, colouriser: DepthColouriser | None = None,
                 scale: int = 1) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in FOURCC:
            raise InputError(f"Unsupported video extension '{suffix or self.path.name}'. Use one of {', '.join(FOURCC)}.")
        check_output_file(self.path, "--out")
        self.fps = float(fps) if fps and fps > 0 else 30.0
        remove_stale_partials(self.path.parent, f".{self.path.stem}.partial-", suffix)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial-{os.getpid()}{suffix}")  # one per writer
        self.colouriser = colouriser or DepthColouriser()
        self.scale = max(1, int(scale))
        self.writer = None
        self.size: tuple[int, int] | None = None
        self.written = 0
        self.meter = FpsMeter()

    def _open(self, width: int, height: int) -> None:
        import cv2

        fourcc = cv2.VideoWriter_fourcc(*FOURCC[self.path.suffix.lower()])
        writer = cv2.VideoWriter(os.fspath(self.tmp), fourcc, self.fps, (width, height))
        if not writer.isOpened():
            raise InputError(f"OpenCV cannot write {self.path} (codec {FOURCC[self.path.suffix.lower()]}); try a .avi path.")
        self.writer, self.size = writer, (width, height)

    def write(self, result: MetricDepth) -> None:
        import cv2

        if result.rgb is None:
            raise InputError("--out needs the RGB frame of each result.")
        image = render_panel(result.rgb, result.depth, self.colouriser, caption=result.caption,
                             fps=self.meter.tick(), relative=result.relative, scale=self.scale)
        if image.shape[0] % 2 or image.shape[1] % 2:  # MPEG-4 encoders need even sizes
            image = cv2.copyMakeBorder(image, 0, image.shape[0] % 2, 0, image.shape[1] % 2, cv2.BORDER_CONSTANT)
        h, w = image.shape[:2]
        if self.writer is None:
            self._open(w, h)
        elif (w, h) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(image)
        self.written += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            os.replace(self.tmp, self.path)
