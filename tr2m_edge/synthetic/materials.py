"""Surface appearance: smooth value noise, procedural textures (wood, tiles, stone), colour palettes."""

from __future__ import annotations

from typing import Callable

import numpy as np


class _Noise:
    """Smooth value noise on a periodic random lattice (bilinear, smoothstep-faded)."""

    def __init__(self, rng: np.random.Generator, size: int = 64) -> None:
        self.table = rng.random((size, size), dtype=np.float32)
        self.size = size

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        x0, y0 = np.floor(u), np.floor(v)
        fx, fy = u - x0, v - y0
        fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
        i0 = x0.astype(np.int64) % self.size
        j0 = y0.astype(np.int64) % self.size
        i1, j1 = (i0 + 1) % self.size, (j0 + 1) % self.size
        t = self.table
        top = t[i0, j0] * (1 - fx) + t[i1, j0] * fx
        bot = t[i0, j1] * (1 - fx) + t[i1, j1] * fx
        return top * (1 - fy) + bot * fy

    def fbm(self, u: np.ndarray, v: np.ndarray, octaves: int = 3) -> np.ndarray:
        out, amp, norm = np.zeros_like(u), 1.0, 0.0
        for k in range(octaves):
            out += amp * self(u * 2 ** k + 17.0 * k, v * 2 ** k - 11.0 * k)
            norm += amp
            amp *= 0.5
        return out / norm


def _texture(kind: str, base: np.ndarray, freq: float, rng: np.random.Generator) -> Callable:
    """A procedural albedo function (u, v in scene units) -> (N, 3) colours in [0, 1]."""
    noise = _Noise(rng)
    second = np.clip(base * rng.uniform(0.55, 0.8), 0, 1)

    if kind == "wood":
        def wood(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            warp = noise.fbm(u * freq * 0.5, v * freq * 4.0)
            grain = 0.5 + 0.5 * np.sin(2 * np.pi * (u * freq * 3.0 + 2.5 * warp))
            planks = (np.floor(v * freq) % 2) * 0.08
            k = (0.7 + 0.3 * grain - planks)[:, None]
            return base * k + second * (1 - k) * 0.5
        return wood
    if kind == "tiles":
        grout = np.array([0.82, 0.8, 0.76], dtype=np.float32)

        def tiles(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            a, b = u * freq, v * freq
            checker = ((np.floor(a) + np.floor(b)) % 2)[:, None]
            col = base * (1 - checker) + second * checker
            col = col * (0.9 + 0.1 * noise(a * 4, b * 4))[:, None]
            edge = (np.minimum(a - np.floor(a), b - np.floor(b)) < 0.06)[:, None]
            return np.where(edge, grout, col)
        return tiles

    def stone(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        n = noise.fbm(u * freq * 2.0, v * freq * 2.0, octaves=4)[:, None]
        return base * (0.55 + 0.6 * n) + second * 0.1
    return stone


def _colour(rng: np.random.Generator, kind: str) -> np.ndarray:
    palettes = {
        "wood": [(0.55, 0.36, 0.2), (0.68, 0.5, 0.32), (0.4, 0.26, 0.16)],
        "tiles": [(0.75, 0.74, 0.7), (0.5, 0.55, 0.6), (0.62, 0.42, 0.35)],
        "stone": [(0.45, 0.45, 0.46), (0.62, 0.6, 0.55), (0.35, 0.36, 0.4)],
        "object": [(0.75, 0.2, 0.15), (0.2, 0.45, 0.75), (0.85, 0.7, 0.2), (0.25, 0.6, 0.3), (0.85, 0.85, 0.85),
                   (0.55, 0.3, 0.6)],
        "wall": [(0.8, 0.78, 0.72), (0.6, 0.68, 0.72), (0.72, 0.62, 0.52), (0.55, 0.55, 0.5)],
    }
    options = palettes[kind]
    base = np.array(options[rng.integers(len(options))], dtype=np.float32)
    return np.clip(base * rng.uniform(0.85, 1.15, size=3).astype(np.float32), 0.02, 1.0)
