"""Colourised metric depth with a labelled colour bar in metres, side by side with the RGB frame.

:class:`DepthColouriser` maps metres to colours (near warm, far cool), over a range that
follows the scene smoothly or over a ``fixed=(min, max)`` range (optionally log-spaced), so
the same colour means the same distance in every frame. :func:`render_panel` lays out
[RGB | (relative depth) | metric depth | colour bar], enlarged by ``scale`` so that text
stays readable on small frames. :func:`colour_bar` draws a labelled bar for any map.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX
Colourise = Callable[[np.ndarray, float, float], np.ndarray]  # (values, lo, hi) -> (..., 3) BGR uint8


class DepthColouriser:
    """Maps metres to colours (OpenCV's TURBO map reversed: near is warm, far is cool).

    Args:
        fixed: a fixed (min, max) range in metres; None: the 2nd..98th percentile of each
            frame, smoothed over frames (EMA) so the colours do not flicker.
        log: colours spaced by log-depth (for ranges spanning decades, e.g. 0.2..80 m).
        smoothing: EMA factor of the following range.
    """

    def __init__(self, fixed: tuple[float, float] | None = None, *, log: bool = False,
                 smoothing: float = 0.8) -> None:
        if fixed is not None:
            lo, hi = float(fixed[0]), float(fixed[1])
            if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo and (lo > 0 or not log)):
                raise ValueError(f"a fixed depth range needs min < max (min > 0 for log colours); got {fixed}")
            fixed = (lo, hi)
        self.fixed = fixed
        self.log = log
        self.smoothing = smoothing
        self.range: tuple[float, float] | None = fixed

    def update(self, depth: np.ndarray) -> tuple[float, float]:
        """The range to colour ``depth`` with (the fixed one, or the smoothed frame percentiles)."""
        if self.fixed is not None:
            return self.fixed
        lo, hi = (float(v) for v in np.percentile(depth, (2, 98)))
        if self.log:
            lo = max(lo, 1e-3)
        if hi - lo < 1e-3:
            hi = lo + 1e-3
        if self.range is None:
            self.range = (lo, hi)
        else:
            a = self.smoothing
            self.range = (a * self.range[0] + (1 - a) * lo, a * self.range[1] + (1 - a) * hi)
        return self.range

    def position(self, depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
        """Where metres fall on the colour scale: 0 at ``lo``, 1 at ``hi`` (clipped)."""
        if self.log:
            d = np.log(np.maximum(depth, 1e-6))
            return np.clip((d - math.log(lo)) / (math.log(hi) - math.log(lo)), 0.0, 1.0)
        return np.clip((depth - lo) / (hi - lo), 0.0, 1.0)

    def colourise(self, depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
        """(H, W) metres -> (H, W, 3) BGR uint8."""
        import cv2

        levels = ((1.0 - self.position(depth, lo, hi)) * 255.0 + 0.5).astype(np.uint8)
        return cv2.applyColorMap(levels, cv2.COLORMAP_TURBO)

    def ticks(self, lo: float, hi: float, count: int) -> list[float]:
        """Tick values: evenly spaced, or 1-2-5 steps inside the range for log colours."""
        if self.log:
            values = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
                      for m in (1, 2, 5) if lo <= m * 10.0 ** e <= hi]
            if len(values) >= 2:
                return values
        return [lo + (hi - lo) * i / (count - 1) for i in range(count)]

    def colour_bar(self, height: int, lo: float, hi: float, width: int = 64, label: str = "depth (m)") -> np.ndarray:
        """(height, width, 3) BGR bar from ``lo`` (top) to ``hi`` (bottom) with ticks in metres."""
        return colour_bar(height, lo, hi, self.colourise, label=label, width=width, fmt=format_metres,
                          ticks=self.ticks(lo, hi, 5 if height >= 120 else 3), log=self.log)


def format_metres(value: float) -> str:
    return f"{value:.2f}m" if value < 10 else f"{value:.0f}m"


def font_scale(height: int) -> float:
    """Font scale for text on an image ``height`` pixels tall (0.35 .. 0.8)."""
    return max(0.35, min(0.8, height / 600))


def colour_bar(height: int, lo: float, hi: float, colourise: Colourise, *, label: str = "", width: int = 64,
               fmt: Callable[[float], str] = lambda v: f"{v:.3g}", ticks: list[float] | None = None,
               log: bool = False) -> np.ndarray:
    """A vertical colour bar, ``lo`` at the top: (height, width, 3) BGR uint8.

    Args:
        colourise: the map's own (values, lo, hi) -> colours function.
        label: written above the bar when there is room (e.g. "depth (m)").
        fmt: tick label format.
        ticks: tick values (default: 5 or 3 evenly spaced ones).
        log: the bar is log-spaced (``lo`` > 0), like a log colour map.
    """
    import cv2

    scale = font_scale(max(height, 200)) if height >= 80 else 0.3
    thick = 2 if scale >= 0.6 else 1
    (_, th), base = cv2.getTextSize("0", FONT, scale, thick)
    top = th + base + 6 if label and height >= 80 else 0
    ramp_w = max(14, width // 4)
    bar = np.zeros((height, width, 3), np.uint8)
    span = max(height - top, 2)
    a, b = (math.log(lo), math.log(hi)) if log else (lo, hi)
    t = np.linspace(0.0, 1.0, span, dtype=np.float64)
    samples = np.exp(a + (b - a) * t) if log else a + (b - a) * t
    bar[top:top + span, :ramp_w] = colourise(samples[:, None].repeat(ramp_w, axis=1).astype(np.float32), lo, hi)
    if top:
        cv2.putText(bar, _fit(label, width - 2, scale * 0.9), (1, th + 3), FONT, scale * 0.9, (255, 255, 255),
                    1, cv2.LINE_AA)
    n = 5 if span >= 120 else 3
    values = ticks if ticks is not None else [lo + (hi - lo) * i / (n - 1) for i in range(n)]
    for value in values:
        v = math.log(value) if log else value
        y = top + int(round(min(max((v - a) / (b - a) if b > a else 0.0, 0.0), 1.0) * (span - 1)))
        cv2.line(bar, (ramp_w, y), (ramp_w + 4, y), (255, 255, 255), 1)
        ty = min(max(y + th // 2, top + th), height - 2)
        cv2.putText(bar, fmt(value), (ramp_w + 6, ty), FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return bar


def relative_colours(relative: np.ndarray) -> np.ndarray:
    """Relative depth D_r (disparity-like: large = near) -> BGR, normalised per frame (2..98 %)."""
    import cv2

    lo, hi = (float(v) for v in np.percentile(relative, (2, 98)))
    norm = np.clip((relative - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    return cv2.applyColorMap((norm * 255.0 + 0.5).astype(np.uint8), cv2.COLORMAP_TURBO)


def write_label(image: np.ndarray, text: str, origin: tuple[int, int], scale: float, *, top: bool = True) -> None:
    """White ``text`` on a darkened strip at ``origin`` (its top-left; bottom-left when ``top`` is False)."""
    import cv2

    x, y = origin
    thick = 2 if scale >= 0.6 else 1
    text = _fit(text, image.shape[1] - x - 12, scale, thick)
    (w, h), base = cv2.getTextSize(text, FONT, scale, thick)
    y0 = y if top else max(0, y - h - base - 8)
    image[y0: y0 + h + base + 8, x: x + w + 12] //= 3
    cv2.putText(image, text, (x + 6, y0 + h + 4), FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)


def render_panel(rgb: np.ndarray, depth: np.ndarray, colouriser: DepthColouriser, *,
                 caption: str = "", fps: float | None = None, with_bar: bool = True,
                 relative: np.ndarray | None = None, scale: int = 1) -> np.ndarray:
    """[RGB | (relative depth) | colourised depth | colour bar] as one BGR uint8 image.

    Args:
        rgb: (H, W, 3) uint8 frame; depth: (H, W) metres.
        relative: D_r at any size (resized to the frame); adds a "relative depth" tile.
        scale: integer enlargement of every tile (text and bar are drawn at the enlarged size).
        caption, fps: written on a darkened strip at the top.
    """
    import cv2

    lo, hi = colouriser.update(depth)
    h, w = depth.shape
    tiles = [rgb[:, :, ::-1], colouriser.colourise(depth, lo, hi)]
    titles = ["", "metric depth"]
    if relative is not None:
        rel = relative if relative.shape == (h, w) else cv2.resize(relative, (w, h), interpolation=cv2.INTER_LINEAR)
        tiles.insert(1, relative_colours(rel))
        titles.insert(1, "relative depth")
    if scale > 1:
        tiles = [cv2.resize(t, (w * scale, h * scale), interpolation=cv2.INTER_LINEAR) for t in tiles]
    height = h * max(1, scale)
    text = font_scale(height)
    if height >= 100 and (relative is not None or scale > 1):
        for tile, title in zip(tiles, titles):
            if title:
                write_label(tile, title, (0, height), text * 0.85, top=False)
    if with_bar:
        tiles.append(colouriser.colour_bar(height, lo, hi, width=64 * max(1, scale)))
    image = np.ascontiguousarray(np.hstack(tiles))
    label = caption if fps is None else f"{fps:5.1f} FPS  {caption}"
    if label:
        write_label(image, label, (0, 0), max(0.35, min(0.6, height / 700)) if scale <= 1 else text)
    return image


def _fit(label: str, width: int, scale: float, thick: int = 1) -> str:
    """``label`` shortened with '...' until it fits ``width`` pixels at ``scale``."""
    import cv2

    def size(text: str) -> int:
        return cv2.getTextSize(text, FONT, scale, thick)[0][0]

    if size(label) <= width:
        return label
    while len(label) > 1 and size(label + "...") > width:
        label = label[:-1]
    return label.rstrip() + "..."
