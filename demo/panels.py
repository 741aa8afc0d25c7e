"""One PNG per scene family: what TR2M sees, predicts and gets wrong, each map with its colour bar.

Two rows of tiles under the scene's caption:
``RGB | relative depth D_r | scale A | shift B`` and
``TR2M metric depth | ground truth | TR2M error | text-only error``.
Metric depth and ground truth share one fixed range in metres; both error maps share
one fixed AbsRel range, so the two methods compare at a glance.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from tr2m_edge.demo.comparison import SceneMaps
from tr2m_edge.errors import InputError
from tr2m_edge.runtime.sinks.render import DepthColouriser, colour_bar, font_scale, format_metres, write_label

ERROR_RANGE = (0.0, 0.5)  # AbsRel colour range of the error maps
GAP = 6


def _colourmap(cmap: int, reverse: bool = False) -> Callable[[np.ndarray, float, float], np.ndarray]:
    """A (values, lo, hi) -> BGR function over an OpenCV colour map."""
    import cv2

    def colourise(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
        t = np.clip((np.asarray(values, np.float64) - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
        if reverse:
            t = 1.0 - t
        return cv2.applyColorMap((t * 255.0 + 0.5).astype(np.uint8), cmap)

    return colourise


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 1.5, 2, 3, 5, 7.5 x 10^k at or above ``value``."""
    if value <= 0:
        return 1.0
    e = math.floor(math.log10(value))
    for m in (1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0):
        if m * 10.0 ** e >= value * (1 - 1e-9):
            return m * 10.0 ** e
    return 10.0 ** (e + 1)


def _tile(values: np.ndarray, colourise: Callable[..., np.ndarray], lo: float, hi: float, title: str,
          label: str, scale: int, fmt: Callable[[float], str], ticks: list[float] | None = None) -> np.ndarray:
    """A map (enlarged ``scale`` times) with its title and a labelled colour bar on its right."""
    import cv2

    h, w = values.shape
    image = cv2.resize(colourise(values, lo, hi), (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    return _with_bar(image, title, colour_bar(h * scale, lo, hi, colourise, label=label, width=40 + 30 * scale,
                                              fmt=fmt, ticks=ticks))


def _with_bar(image: np.ndarray, title: str, bar: np.ndarray | None) -> np.ndarray:
    write_label(image, title, (0, image.shape[0]), font_scale(image.shape[0]) * 0.85, top=False)
    parts = [image] if bar is None else [image, bar]
    return np.hstack(parts)


def render_family_panel(scene: SceneMaps, scale: int = 2) -> np.ndarray:
    """The panel of one scene as a BGR uint8 image."""
    import cv2

    f = scene.frame
    h, w = f.depth.shape
    depth_hi = nice_ceiling(float(np.percentile(f.depth, 99.5)))
    depth = DepthColouriser(fixed=(0.0, depth_hi))
    rel = scene.relative
    r_lo, r_hi = (float(v) for v in np.percentile(rel, (1, 99)))
    turbo = _colourmap(cv2.COLORMAP_TURBO)
    viridis = _colourmap(cv2.COLORMAP_VIRIDIS)
    inferno = _colourmap(cv2.COLORMAP_INFERNO)

    def rng(x: np.ndarray) -> tuple[float, float]:
        lo, hi = (float(v) for v in np.percentile(x, (1, 99)))
        return lo, hi if hi > lo else lo + 1e-6

    def abs_rel(pred: np.ndarray) -> np.ndarray:
        return np.abs(pred - f.depth) / f.depth

    sci = "{:.3g}".format
    rgb = cv2.resize(f.rgb[:, :, ::-1], (w * scale, h * scale), interpolation=cv2.INTER_LINEAR)
    a_lo, a_hi = rng(scene.scale)
    b_lo, b_hi = rng(scene.shift)
    top = [
        _with_bar(np.ascontiguousarray(rgb), "RGB", None),
        _tile(rel, turbo, r_lo, r_hi, "relative depth D_r (stage 0)", "D_r", scale, sci),
        _tile(scene.scale, viridis, a_lo, a_hi, "scale A", "A", scale, sci),
        _tile(scene.shift, viridis, b_lo, b_hi, "shift B", "B", scale, sci),
    ]
    err_ticks = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    pct = "{:.0%}".format
    bottom = [
        _tile(scene.depth["tr2m"], depth.colourise, 0.0, depth_hi, "TR2M metric depth", "depth (m)", scale,
              format_metres, depth.ticks(0.0, depth_hi, 5)),
        _tile(f.depth, depth.colourise, 0.0, depth_hi, "ground truth", "depth (m)", scale, format_metres,
              depth.ticks(0.0, depth_hi, 5)),
        _tile(abs_rel(scene.depth["tr2m"]), inferno, *ERROR_RANGE, "TR2M error |D-GT|/GT", "AbsRel", scale, pct,
              err_ticks),
        _tile(abs_rel(scene.depth["text_only"]), inferno, *ERROR_RANGE, "text-only error |D-GT|/GT", "AbsRel", scale,
              pct, err_ticks),
    ]
    rows = [_row(top), _row(bottom)]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    head = np.zeros((int(44 * font_scale(h * scale) / 0.5), width, 3), np.uint8)
    write_label(head, f"{f.family}: \"{f.caption}\"", (0, 4), font_scale(h * scale))
    sep = np.zeros((GAP, width, 3), np.uint8)
    return np.vstack([head, rows[0], sep, rows[1]])


def _row(tiles: list[np.ndarray]) -> np.ndarray:
    height = max(t.shape[0] for t in tiles)
    parts = []
    for t in tiles:
        parts += [np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0))), np.zeros((height, GAP, 3), np.uint8)]
    return np.hstack(parts[:-1])


def write_panels(scenes: dict[str, SceneMaps], folder: str | Path, scale: int = 2) -> dict[str, Path]:
    """Write ``folder/panel_<family>.png`` for each family; returns family -> path."""
    import cv2

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for family, scene in scenes.items():
        path = out / f"panel_{family}.png"
        ok, buf = cv2.imencode(".png", render_family_panel(scene, scale), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise InputError(f"OpenCV could not encode the panel of {family}.")
        path.write_bytes(buf.tobytes())
        paths[family] = path
    return paths
