"""Frame preprocessing, identical in numpy (runtime, no PyTorch) and torch (training).

A frame (RGB, HxWx3 uint8) becomes the network input (1, 3, h, w) float32: scaled to
[0, 1], resized to the configured multiple-of-14 size, then normalised with the ImageNet
mean/std. The resize is ``PreprocessConfig.resize``: ``bilinear`` (align_corners=True, no
antialiasing, as the released evaluation code does; the default) or ``antialias``
(antialiased bilinear with half-pixel centres, PyTorch's ``antialias=True`` = PIL's
filter, as the released demo resizes camera frames). Resizing and normalising commute
(both are linear and the resize weights sum to one), so the exported uint8 preprocess
graph may do them in either order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tr2m_edge.config import PreprocessConfig
from tr2m_edge.errors import InputError

if TYPE_CHECKING:
    import torch


def check_frame(frame: np.ndarray, name: str = "frame") -> np.ndarray:
    """Validate an RGB frame: HxWx3, uint8 (or float in [0, 1]). Grey HxW is expanded."""
    if not isinstance(frame, np.ndarray):
        raise InputError(f"{name} must be a numpy array (HxWx3 RGB); got {type(frame).__name__}.")
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4) or min(frame.shape[:2]) < 2:
        raise InputError(f"{name} must be HxWx3 RGB with H, W >= 2; got shape {frame.shape}.")
    return frame[:, :, :3]


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Source coordinates in float32, as PyTorch's CPU kernel computes them, so both paths
    # agree to float rounding rather than to 1e-4 (float32 positions of large frames).
    scale = np.float32((n_in - 1) / (n_out - 1)) if n_out > 1 else np.float32(0.0)
    pos = np.arange(n_out, dtype=np.float32) * scale
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, np.clip(pos - i0.astype(np.float32), 0.0, 1.0).astype(np.float32)


def resize_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize with align_corners=True of an HxWxC or HxW float array."""
    h, w = size
    y0, y1, wy = _axis_weights(image.shape[0], h)
    x0, x1, wx = _axis_weights(image.shape[1], w)
    img = image.astype(np.float32, copy=False)
    extra = (None,) * (img.ndim - 2)
    wx_b = wx[(None, slice(None)) + extra]
    top = img[y0][:, x0] * (1 - wx_b) + img[y0][:, x1] * wx_b
    bot = img[y1][:, x0] * (1 - wx_b) + img[y1][:, x1] * wx_b
    wy_b = wy[(slice(None), None) + extra]
    return top * (1 - wy_b) + bot * wy_b


def _antialias_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output index: source indices (n_out, K) and normalised triangle-filter weights (n_out, K)
    of antialiased bilinear resizing (support widened by the downscale factor, half-pixel centres)."""
    # float32 arithmetic, as PyTorch's kernel computes it (float32 centres of large frames
    # are off by ~1e-5 pixels; computing them in float64 would differ from PyTorch by that)
    f32 = np.float32
    scale = f32(n_in / n_out)
    support = max(scale, f32(1.0))
    inv = f32(1.0) / scale if scale >= 1.0 else f32(1.0)
    centre = scale * (np.arange(n_out, dtype=f32) + f32(0.5))
    lo = np.maximum((centre - support + f32(0.5)).astype(np.int64), 0)
    hi = np.minimum((centre + support + f32(0.5)).astype(np.int64), n_in)
    k = int((hi - lo).max())
    idx = lo[:, None] + np.arange(k)[None, :]
    w = np.maximum(f32(0.0), f32(1.0) - np.abs((idx.astype(f32) - centre[:, None] + f32(0.5)) * inv))
    w[idx >= hi[:, None]] = 0.0
    w /= w.sum(axis=1, keepdims=True)
    return np.minimum(idx, n_in - 1), w.astype(f32)


def resize_antialias(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Antialiased bilinear resize (PyTorch's ``antialias=True``, align_corners=False) of an
    HxWxC or HxW float array."""
    img = image.astype(np.float32, copy=False)
    trail = (1,) * (img.ndim - 2)
    yi, yw = _antialias_taps(img.shape[0], size[0])
    img = sum(img[yi[:, j]] * yw[:, j].reshape(-1, 1, *trail) for j in range(yi.shape[1]))
    xi, xw = _antialias_taps(img.shape[1], size[1])
    return sum(img[:, xi[:, j]] * xw[:, j].reshape(1, -1, *trail) for j in range(xi.shape[1]))


def preprocess_frame(frame: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """RGB frame (HxWx3 uint8, or float in [0, 1]) -> normalised (1, 3, h, w) float32."""
    frame = check_frame(frame)
    img = frame.astype(np.float32) / 255.0 if frame.dtype == np.uint8 else frame.astype(np.float32)
    img = resize_antialias(img, cfg.input_size) if cfg.resize == "antialias" else resize_bilinear(img, cfg.input_size)
    mean = np.asarray(cfg.mean, dtype=np.float32)
    std = np.asarray(cfg.std, dtype=np.float32)
    img = (img - mean) / std
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None])


def preprocess_tensor(images: "torch.Tensor", cfg: PreprocessConfig) -> "torch.Tensor":
    """Batch (B, 3, H, W) float in [0, 1] (or uint8) -> normalised (B, 3, h, w) float32."""
    import torch

    if images.ndim != 4 or images.shape[1] != 3:
        raise InputError(f"images must be (B, 3, H, W); got shape {tuple(images.shape)}.")
    mean = torch.tensor(cfg.mean, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    return resize_normalise(images, cfg.input_size, mean, std, mode=cfg.resize)


def resize_normalise(
    images: "torch.Tensor", size: tuple[int, int], mean: "torch.Tensor", std: "torch.Tensor",
    always_resize: bool = False, mode: str = "bilinear",
) -> "torch.Tensor":
    """The torch steps shared by training, the exported preprocess graph and the torch runner.

    (B, 3, H, W) uint8 or float in [0, 1] -> resize to ``size`` (``mode`` ``bilinear``:
    align_corners=True; ``antialias``: antialiased, align_corners=False) ->
    ``(x - mean) / std`` with (1, 3, 1, 1) float32 tensors (buffers on the right device, so a
    caller on the per-frame path builds no tensors from host data). ``always_resize`` keeps
    the resize even at equal sizes (an exact identity), so a traced graph keeps its Resize
    for frames of other sizes.
    """
    import torch
    import torch.nn.functional as F

    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    if always_resize or tuple(x.shape[-2:]) != tuple(size):
        if mode == "antialias":
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
        else:
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
    return (x - mean) / std


def clip_depth(depth: np.ndarray, min_depth: float, max_depth: float) -> tuple[np.ndarray, int]:
    """inf -> max, NaN -> min, clamp to [min, max]; returns the map and how many values were non-finite."""
    bad = int(np.count_nonzero(~np.isfinite(depth)))
    out = np.nan_to_num(depth, nan=min_depth, posinf=max_depth, neginf=min_depth)
    return np.clip(out, min_depth, max_depth), bad
