"""``--show``: a live window with the frame, colourised metric depth, a colour bar in metres,
the FPS and the caption, scaled to fit ``--window-size``, with a help line of its keys.

Keys (also on the window's bottom line):

- ``q`` / Esc: stop capturing and drain (like Ctrl-C).
- ``n``: next cached scene of the bundle.
- ``t``: type a new caption into the window; Enter applies it (embedded at run time by the
  text encoder, on its own thread, through ``DepthPipeline.set_scene``), Esc cancels,
  Backspace deletes.

The sink runs in the thread that consumes the pipeline's results (the sink thread) and
never blocks it: it composes the image and hands the newest one to the window's display
thread (older ones are dropped, as in latency mode); typed captions are embedded on their
own thread (:class:`~tr2m_edge.runtime.caption_input.CaptionWorker`).
"""

from __future__ import annotations

import math
import os
import sys
import threading
from typing import Callable

import numpy as np

from tr2m_edge.errors import InputError
from tr2m_edge.runtime.results import MetricDepth
from tr2m_edge.runtime.sinks.base import Sink
from tr2m_edge.runtime.sinks.overlay import FpsMeter
from tr2m_edge.runtime.sinks.render import FONT, DepthColouriser, font_scale, render_panel, write_label

WINDOW = "tr2m-edge"
DEFAULT_WINDOW_SIZE = (1280, 720)  # fits a 1280 px wide screen; --window-size for others
KEYS_HELP = "q quit | n next scene | t type a caption"
TYPING_HELP = "Enter apply | Esc cancel"
GUI_HINT = "pip install 'tr2m-edge[gui]'"
MAX_CAPTION = 200  # characters one typed caption may have
ENTER, ESC, BACKSPACE, DELETE = (13, 10), 27, 8, 127


def display_problem() -> str | None:
    """Why no window can be shown here (None when one can)."""
    try:
        import cv2
    except ImportError:
        return f"OpenCV is not installed ({GUI_HINT} brings one with windows)"
    info = cv2.getBuildInformation()
    gui = info.split("GUI:", 1)[1].split("\n", 1)[0].strip() if "GUI:" in info else ""
    if gui.upper() in ("NONE", ""):
        return (f"this OpenCV has no GUI (a headless build, e.g. opencv-python-headless); {GUI_HINT} "
                "(pip uninstall opencv-python-headless first)")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display is attached (DISPLAY and WAYLAND_DISPLAY are unset)"
    return None


class WindowKeys:
    """What a key pressed in the window does (``cv2.waitKey`` codes: -1 for none).

    Outside typing: ``q``/Esc -> ``on_stop``, ``n`` -> ``on_next_scene``, ``t`` starts typing.
    While typing: printable ASCII adds to :attr:`typing`, Backspace deletes, Enter hands the
    text to ``on_caption``, Esc cancels.
    """

    def __init__(self, on_stop: Callable[[], None] | None = None, on_next_scene: Callable[[], None] | None = None,
                 on_caption: Callable[[str], None] | None = None) -> None:
        self.on_stop = on_stop
        self.on_next_scene = on_next_scene
        self.on_caption = on_caption
        self.typing: str | None = None  # the caption being typed (None: not typing)

    def press(self, key: int) -> None:
        if key < 0 or key == 255:
            return
        if self.typing is not None:
            self._type(key)
        elif key in (ord("q"), ESC):
            if self.on_stop:
                self.on_stop()
        elif key == ord("n"):
            if self.on_next_scene:
                self.on_next_scene()
        elif key == ord("t") and self.on_caption:
            self.typing = ""

    def _type(self, key: int) -> None:
        text = self.typing or ""
        if key in ENTER:
            self.typing = None
            if text.strip() and self.on_caption:
                self.on_caption(text.strip())
        elif key == ESC:
            self.typing = None
        elif key in (BACKSPACE, DELETE):
            self.typing = text[:-1]
        elif 32 <= key < 127 and len(text) < MAX_CAPTION:
            self.typing = text + chr(key)

    def help_line(self) -> str:
        """The window's bottom line: the keys, or the caption being typed."""
        if self.typing is not None:
            return f"caption: {self.typing}_   ({TYPING_HELP})"
        return KEYS_HELP if self.on_caption else KEYS_HELP.rsplit(" | ", 1)[0]


def fit_frame(frame_hw: tuple[int, int], tiles: int, box: tuple[int, int], extra_h: int) -> tuple[int, int]:
    """Tile size (h, w) so that ``tiles`` tiles side by side plus a colour bar fit ``box`` (width, height).

    The bar is about a fifth of the tile height wide (64..160 px); ``extra_h`` rows (the help
    line) sit below the panel. The frame's aspect is kept; small frames are enlarged.
    """
    h, w = frame_hw
    box_w, box_h = box
    th = min(box_h - extra_h, int(h * (box_w - bar_width(0)) / (tiles * w)))  # the narrowest bar first
    while th > 1 and tiles * int(w * th / h) + bar_width(th) > box_w:  # the bar widens with the height
        th -= 1
    return max(1, th), max(1, int(w * th / h))


def bar_width(height: int) -> int:
    """Width of the colour bar next to a panel ``height`` pixels tall, so that its labels
    (drawn at a font size that grows with the height) fit beside the ramp (a quarter of it)."""
    import cv2

    scale = font_scale(max(height, 200)) if height >= 80 else 0.3
    tick = cv2.getTextSize("10.00m", FONT, scale, 2 if scale >= 0.6 else 1)[0][0]
    label = cv2.getTextSize("depth (m)", FONT, scale * 0.9, 1)[0][0] + 2
    return int(min(200, max(64, math.ceil((tick + 8) * 4 / 3), label)))


class LiveView:
    """The window's image: the panel fitted to ``window_size``, FPS and caption on top, the
    colour bar in metres beside it and the help line (or the caption being typed) below.

    Args:
        keys: the window's key handling (its help line is drawn).
        colouriser: metres -> colours; share one with ``--out`` so both show the same range.
        window_size: (width, height) the image may take at most.
        caption_status: what to add to the help line (e.g. a typed caption being embedded).
    """

    def __init__(self, keys: WindowKeys | None = None, colouriser: DepthColouriser | None = None,
                 window_size: tuple[int, int] = DEFAULT_WINDOW_SIZE,
                 caption_status: Callable[[], str | None] | None = None) -> None:
        if min(window_size) < 160:
            raise InputError(f"--window-size {window_size[0]}x{window_size[1]} is too small for the panel "
                             "(at least 160 pixels each way).")
        self.keys = keys or WindowKeys()
        self.colouriser = colouriser or DepthColouriser()
        self.window_size = (int(window_size[0]), int(window_size[1]))
        self.caption_status = caption_status
        self.strip_h = max(22, int(26 * font_scale(self.window_size[1]) / 0.6))

    def compose(self, result: MetricDepth, fps: float | None = None) -> np.ndarray:
        """(h, w, 3) BGR uint8 image for ``result``, at most ``window_size``."""
        import cv2

        rgb, depth, relative = result.rgb, result.depth, result.relative
        if rgb is None:
            raise InputError("--show needs the RGB frame of each result.")
        th, tw = fit_frame(depth.shape, 3 if relative is not None else 2, self.window_size, self.strip_h)
        if (th, tw) != depth.shape:
            how = cv2.INTER_AREA if 2 * th < depth.shape[0] else cv2.INTER_LINEAR  # AREA only where it must average
            rgb, depth = cv2.resize(rgb, (tw, th), interpolation=how), cv2.resize(depth, (tw, th), interpolation=how)
        panel = render_panel(rgb, depth, self.colouriser, caption=result.caption, fps=fps, relative=relative,
                             with_bar=False)
        lo, hi = self.colouriser.range or self.colouriser.update(depth)
        panel = np.hstack([panel, self.colouriser.colour_bar(th, lo, hi, width=bar_width(th))])
        strip = np.zeros((self.strip_h, panel.shape[1], 3), np.uint8)
        status = self.caption_status() if self.caption_status else None
        line = self.keys.help_line() + (f"   {status}" if status and self.keys.typing is None else "")
        write_label(strip, line, (0, 0), max(0.4, min(0.6, self.strip_h / 45)))
        return np.ascontiguousarray(np.vstack([panel, strip]))


class DisplaySink(Sink):
    """Shows every result in a window (:class:`LiveView`) and handles its keys (:class:`WindowKeys`).

    The sink thread composes each image; a display thread owns the window (Linux, Windows:
    HighGUI may run off the main thread there), shows the newest image and polls the keys
    every few milliseconds, so typing keeps up however slowly frames come. On macOS, whose
    windows live on the main thread, the sink thread shows and polls once per frame.

    Args:
        on_stop / on_next_scene: called for the ``q``/Esc and ``n`` keys.
        on_caption: called with a caption typed into the window (``t``, text, Enter);
            None: the window offers no typing.
        caption_status: what to show on the help line while a typed caption is embedded
            (e.g. :attr:`CaptionWorker.status`), or None.
        colouriser: metres -> colours; share one with ``--out`` so both show the same range.
        window_size: (width, height) the window may take at most.
    """

    name = "show"
    POLL_MS = 5  # key polling interval of the display thread

    def __init__(self, on_stop: Callable[[], None] | None = None,
                 on_next_scene: Callable[[], None] | None = None, *,
                 on_caption: Callable[[str], None] | None = None,
                 caption_status: Callable[[], str | None] | None = None,
                 colouriser: DepthColouriser | None = None,
                 window_size: tuple[int, int] = DEFAULT_WINDOW_SIZE,
                 threaded: bool | None = None) -> None:
        problem = display_problem()
        if problem:
            raise InputError(f"--show cannot open a window: {problem}. Use --out FILE.mp4 or --save-depth DIR instead.")
        self.keys = WindowKeys(on_stop, on_next_scene, on_caption)
        self.view = LiveView(self.keys, colouriser, window_size, caption_status)
        self.meter = FpsMeter()
        self.last_image: np.ndarray | None = None  # the last image composed (tests, screenshots)
        self._opened = False
        self._cond = threading.Condition()
        self._pending: np.ndarray | None = None  # newest image not shown yet (older ones are dropped)
        self._closing = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if threaded if threaded is not None else sys.platform != "darwin":
            self._thread = threading.Thread(target=self._display_loop, name="tr2m-window", daemon=True)
            self._thread.start()

    def write(self, result: MetricDepth) -> None:
        fps = self.meter.tick()
        if result.rgb is None:
            return
        image = self.view.compose(result, fps)
        self.last_image = image
        if self._thread is None:
            self._show(image, 1)
            return
        with self._cond:
            if self._error is not None:
                raise InputError(f"--show: the window failed: {self._error}") from None
            self._pending = image
            self._cond.notify()

    def _show(self, image: np.ndarray | None, wait_ms: int) -> None:
        """Show ``image`` (None: keep the current one) and handle a key pressed within ``wait_ms``."""
        import cv2

        if image is not None:
            if not self._opened:
                # shown 1:1 at the fitted size; no Qt toolbar or status bar
                cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE | getattr(cv2, "WINDOW_GUI_NORMAL", 0))
                self._opened = True
            cv2.imshow(WINDOW, image)
        if self._opened:
            self.keys.press(cv2.waitKey(wait_ms))

    def _display_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    if self._pending is None and not self._closing and not self._opened:
                        self._cond.wait(0.1)  # nothing to show yet
                    if self._closing:
                        break
                    image, self._pending = self._pending, None
                self._show(image, self.POLL_MS)
        except Exception as exc:  # noqa: BLE001 - reported by the next write, in the sink thread
            with self._cond:
                self._error = exc
        finally:
            self._destroy()

    def _destroy(self) -> None:
        if self._opened:
            import cv2

            cv2.destroyWindow(WINDOW)
            cv2.waitKey(1)
            self._opened = False

    def close(self) -> None:
        if self._thread is not None:
            with self._cond:
                self._closing = True
                self._cond.notify()
            self._thread.join(timeout=5.0)
            self._thread = None
        else:
            self._destroy()
