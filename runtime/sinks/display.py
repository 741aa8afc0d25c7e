"""``--show``: a window with the frame, colourised metric depth, a colour bar in metres,
the caption and the FPS. Keys: ``q``/Esc stop (drain), ``n`` next cached scene."""

from __future__ import annotations

import os
import sys
import time
from typing import Callable

from tr2m_edge.errors import InputError
from tr2m_edge.runtime.results import MetricDepth
from tr2m_edge.runtime.sinks.base import Sink
from tr2m_edge.runtime.sinks.render import DepthColouriser, render_panel

WINDOW = "tr2m-edge"


def display_problem() -> str | None:
    """Why no window can be shown here (None when one can)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display is attached (DISPLAY and WAYLAND_DISPLAY are unset)"
    import cv2

    info = cv2.getBuildInformation()
    gui = info.split("GUI:", 1)[1].split("\n", 1)[0].strip() if "GUI:" in info else ""
    if gui.upper() in ("NONE", ""):
        return "this OpenCV build has no GUI support (opencv-python-headless)"
    return None


class DisplaySink(Sink):
    """Shows every result; ``on_stop``/``on_next_scene`` are called for the q/Esc and n keys."""

    name = "show"

    def __init__(self, on_stop: Callable[[], None] | None = None,
                 on_next_scene: Callable[[], None] | None = None) -> None:
        problem = display_problem()
        if problem:
            raise InputError(
                f"--show cannot open a window: {problem}. Use --out FILE.mp4 or --save-depth DIR instead "
                "(or install opencv-python and run with a display)."
            )
        self.on_stop = on_stop
        self.on_next_scene = on_next_scene
        self.colouriser = DepthColouriser()
        self._last = time.perf_counter()
        self._fps: float | None = None
        self._opened = False

    def write(self, result: MetricDepth) -> None:
        import cv2

        now = time.perf_counter()
        inst = 1.0 / max(now - self._last, 1e-6)
        self._fps = inst if self._fps is None else 0.9 * self._fps + 0.1 * inst
        self._last = now
        if result.rgb is None:
            return
        image = render_panel(result.rgb, result.depth, self.colouriser, caption=result.caption, fps=self._fps)
        cv2.imshow(WINDOW, image)
        self._opened = True
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27) and self.on_stop:
            self.on_stop()
        elif key == ord("n") and self.on_next_scene:
            self.on_next_scene()

    def close(self) -> None:
        if self._opened:
            import cv2

            cv2.destroyWindow(WINDOW)
            cv2.waitKey(1)
            self._opened = False
