"""Colourised metric depth with a colour bar in metres, side by side with the RGB frame."""

from __future__ import annotations

import numpy as np


class DepthColouriser:
    """Maps metres to colours over a range that follows the scene smoothly.

    The range is the 2nd..98th percentile of each frame, smoothed over frames (EMA) so
    the colours do not flicker; near is warm, far is cool (OpenCV's TURBO map reversed).
    """

    def __init__(self, smoothing: float = 0.8) -> None:
        self.smoothing = smoothing
        self.range: tuple[float, float] | None = None

    def update(self, depth: np.ndarray) -> tuple[float, float]:
        lo, hi = (float(v) for v in np.percentile(depth, (2, 98)))
        if hi - lo < 1e-3:
            hi = lo + 1e-3
        if self.range is None:
            self.range = (lo, hi)
        else:
            a = self.smoothing
            self.range = (a * self.range[0] + (1 - a) * lo, a * self.range[1] + (1 - a) * hi)
        return self.range

    def colourise(self, depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
        """(H, W) metres -> (H, W, 3) BGR uint8."""
        import cv2

        norm = np.clip((depth - lo) / (hi - lo), 0.0, 1.0)
        levels = ((1.0 - norm) * 255.0 + 0.5).astype(np.uint8)
        return cv2.applyColorMap(levels, cv2.COLORMAP_TURBO)

    def colour_bar(self, height: int, lo: float, hi: float, width: int = 64) -> np.ndarray:
        """(height, width, 3) BGR bar from ``lo`` (top) to ``hi`` (bottom) with ticks in metres."""
        import cv2

        ramp = np.linspace(lo, hi, height, dtype=np.float32)[:, None].repeat(14, axis=1)
        bar = np.zeros((height, width, 3), np.uint8)
        bar[:, :14] = self.colourise(ramp, lo, hi)
        scale = max(0.3, min(0.45, height / 600))
        ticks = 5 if height >= 120 else 3
        for i in range(ticks):
            y = int(round(i * (height - 1) / (ticks - 1)))
            value = lo + (hi - lo) * i / (ticks - 1)
            cv2.line(bar, (14, y), (18, y), (255, 255, 255), 1)
            ty = min(max(y + 4, 10), height - 2)
            cv2.putText(bar, _metres(value), (20, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
        return bar


def _metres(value: float) -> str:
    return f"{value:.2f}m" if value < 10 else f"{value:.0f}m"


def render_panel(rgb: np.ndarray, depth: np.ndarray, colouriser: DepthColouriser, *,
                 caption: str = "", fps: float | None = None, with_bar: bool = True) -> np.ndarray:
    """[RGB | colourised depth | colour bar] as one BGR uint8 image, caption and FPS written on top."""
    import cv2

    lo, hi = colouriser.update(depth)
    panels = [rgb[:, :, ::-1], colouriser.colourise(depth, lo, hi)]
    if with_bar:
        panels.append(colouriser.colour_bar(depth.shape[0], lo, hi))
    image = np.ascontiguousarray(np.hstack(panels))
    label = caption if fps is None else f"{fps:5.1f} FPS  {caption}"
    if label:
        scale = max(0.35, min(0.6, image.shape[0] / 700))
        label = _fit(label, image.shape[1] - 12, scale)
        (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        y = h + 5
        image[: y + base + 3, : w + 12] //= 3  # darkened strip: white text readable on any colour
        cv2.putText(image, label, (6, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def _fit(label: str, width: int, scale: float) -> str:
    """``label`` shortened with '...' until it fits ``width`` pixels at ``scale``."""
    import cv2

    def size(text: str) -> int:
        return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]

    if size(label) <= width:
        return label
    while len(label) > 1 and size(label + "...") > width:
        label = label[:-1]
    return label.rstrip() + "..."
