"""Depth metrics exactly as the released TR2M evaluation computes them.

Per image: predictions are clipped to [min_depth, max_depth] (inf -> max, NaN -> min);
valid pixels have min_depth < gt < max_depth and lie inside the dataset's crop; then
delta<1.25^k, AbsRel, SqRel, RMSE, RMSE-log, log10 and
SILog = 100 * sqrt(mean(e^2) - mean(e)^2) with e = ln(pred) - ln(gt).
Datasets average the per-image values (batch 1, no median scaling).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from tr2m_edge.errors import InputError

METRIC_NAMES = ("d1", "d2", "d3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog")
LOWER_IS_BETTER = {"abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog"}
CROPS = ("none", "eigen", "garg", "eigen_kitti")


def crop_mask(shape: tuple[int, int], crop: str) -> np.ndarray:
    """Boolean evaluation mask of the named crop for an image of ``shape`` (H, W).

    - ``eigen``: NYU's rows 45:471, cols 41:601 (absolute pixels of a 480x640 frame; the
      released code applies the same indices to the other Eigen-cropped indoor sets).
    - ``garg``: KITTI's Garg crop, rows 0.40810811H..0.99189189H, cols 0.03594771W..0.96405229W,
      of the frame as scored: the released KITTI loader crops the ground truth to the
      352x1216 KB crop first, so H, W = 352, 1216 there (rows 143:349, cols 43:1172); DIODE
      outdoor takes it on its 768x1024 frames.
    - ``eigen_kitti``: KITTI's Eigen crop, rows 0.3324324H..0.91351351H, same columns.
    """
    h, w = shape
    mask = np.zeros((h, w), dtype=bool)
    if crop == "none":
        mask[:] = True
    elif crop == "eigen":
        mask[45:471, 41:601] = True
    elif crop == "garg":
        mask[int(0.40810811 * h):int(0.99189189 * h), int(0.03594771 * w):int(0.96405229 * w)] = True
    elif crop == "eigen_kitti":
        mask[int(0.3324324 * h):int(0.91351351 * h), int(0.03594771 * w):int(0.96405229 * w)] = True
    else:
        raise InputError(f"Unknown crop '{crop}'. Available: {', '.join(CROPS)}.")
    return mask


def scored_mask(
    gt: np.ndarray, min_depth: float, max_depth: float, crop: str = "none", valid_mask: np.ndarray | None = None
) -> np.ndarray:
    """Boolean (H, W) mask of the pixels an image is scored on: min < gt < max, inside the crop,
    and inside ``valid_mask`` when given (dataset-specific invalid pixels)."""
    gt = np.asarray(gt, dtype=np.float64).squeeze()
    valid = (gt > min_depth) & (gt < max_depth)
    if crop != "none":
        if gt.ndim != 2:
            raise InputError(f"Crop '{crop}' needs HxW depth maps; got shape {gt.shape}.")
        valid &= crop_mask(gt.shape, crop)
    if valid_mask is not None:
        valid &= np.asarray(valid_mask, dtype=bool)
    return valid


def compute_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    min_depth: float,
    max_depth: float,
    crop: str = "none",
    valid_mask: np.ndarray | None = None,
) -> dict[str, float]:
    """Metrics of one predicted depth map against ground truth (both HxW, metres).

    ``valid_mask`` adds dataset-specific invalid pixels (e.g. iBims' transparent masks).
    Returns NaN for every metric when no pixel is valid.
    """
    pred = np.asarray(pred, dtype=np.float64).squeeze()
    gt = np.asarray(gt, dtype=np.float64).squeeze()
    if pred.shape != gt.shape:
        raise InputError(f"Prediction {pred.shape} and ground truth {gt.shape} differ in shape; resize the prediction first.")
    pred = np.nan_to_num(pred, nan=min_depth, posinf=max_depth, neginf=min_depth)
    pred = np.clip(pred, min_depth, max_depth)
    valid = scored_mask(gt, min_depth, max_depth, crop, valid_mask)
    if not valid.any():
        return {k: float("nan") for k in METRIC_NAMES}
    p, g = pred[valid], gt[valid]
    thresh = np.maximum(g / p, p / g)
    err_log = np.log(p) - np.log(g)
    return {
        "d1": float(np.mean(thresh < 1.25)),
        "d2": float(np.mean(thresh < 1.25 ** 2)),
        "d3": float(np.mean(thresh < 1.25 ** 3)),
        "abs_rel": float(np.mean(np.abs(g - p) / g)),
        "sq_rel": float(np.mean((g - p) ** 2 / g)),
        "rmse": float(np.sqrt(np.mean((g - p) ** 2))),
        "rmse_log": float(np.sqrt(np.mean(err_log ** 2))),
        "log10": float(np.mean(np.abs(np.log10(g) - np.log10(p)))),
        "silog": float(100.0 * np.sqrt(max(np.mean(err_log ** 2) - np.mean(err_log) ** 2, 0.0))),
    }


def average_metrics(per_image: Iterable[dict[str, float]]) -> dict[str, float]:
    """Mean of per-image metrics, skipping images with no valid pixel."""
    rows = [r for r in per_image if not np.isnan(r["abs_rel"])]
    if not rows:
        return {k: float("nan") for k in METRIC_NAMES}
    return {k: float(np.mean([r[k] for r in rows])) for k in METRIC_NAMES}
