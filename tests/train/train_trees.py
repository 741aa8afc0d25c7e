"""Writers of small dataset trees in each dataset's public layout (test fixtures)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CAPTION_LINES = [f"a test scene, caption {i}" for i in range(10)] + [f"An image with objects {i}" for i in range(5)]


def rgb_image(shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def write_depth16(path: Path, depth_m: np.ndarray, scale: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.round(depth_m * scale).astype(np.uint16))


def write_caption(root: Path, dataset: str, split: str, rel: str, lines: list[str] | None = None) -> None:
    p = root / "text" / dataset / split / f"{rel}.txt"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(lines or CAPTION_LINES) + "\n")


def nyu_tree(root: Path, split: str, frames: list[tuple[str, int, np.ndarray, np.ndarray]], split_file: bool = True,
             captions: bool = True) -> None:
    """frames: (scene, number, rgb, depth metres); train -> sync/, test -> official_splits/test/."""
    data = root / ("sync" if split == "train" else "official_splits/test")
    lines = []
    for scene, num, rgb, depth in frames:
        write_rgb(data / scene / f"rgb_{num:05d}.jpg", rgb)
        write_depth16(data / scene / f"sync_depth_{num:05d}.png", depth, 1000.0)
        lead = "/" if split == "train" else ""
        lines.append(f"{lead}{scene}/rgb_{num:05d}.jpg {lead}{scene}/sync_depth_{num:05d}.png 518.8579")
        if captions:
            write_caption(root, "nyu", split, f"{scene}/rgb_{num:05d}")
    if split_file:
        (root / "train_test_inputs").mkdir(parents=True, exist_ok=True)
        (root / "train_test_inputs" / f"nyudepthv2_{split}_files_with_gt.txt").write_text("\n".join(lines) + "\n")


def kitti_tree(root: Path, split: str, frames: list[tuple[str, int, np.ndarray, np.ndarray | None]]) -> None:
    """frames: (drive, frame number, rgb, depth metres or None = no ground truth)."""
    lines = []
    for drive, num, rgb, depth in frames:
        date = drive[:10]
        img_rel = f"{date}/{drive}/image_02/data/{num:010d}.png"
        write_rgb(root / "raw_data" / img_rel, rgb)
        gt_rel = f"{drive}/proj_depth/groundtruth/image_02/{num:010d}.png"
        if depth is not None:
            write_depth16(root / "data_depth_annotated" / "train" / gt_rel, depth, 256.0)
            write_caption(root, "kitti", split, img_rel[:-4])
        lines.append(f"{img_rel} {gt_rel if depth is not None else 'None'} 721.5377")
    (root / "splits").mkdir(parents=True, exist_ok=True)
    (root / "splits" / f"eigen_{split}_files_with_gt.txt").write_text("\n".join(lines) + "\n")


def void_tree(root: Path, split: str, frames: list[tuple[str, str, np.ndarray, np.ndarray]]) -> None:
    """frames: (sequence, timestamp, rgb, depth metres) under void_1500/data/."""
    images, gts = [], []
    for seq, stamp, rgb, depth in frames:
        img_rel = f"void_1500/data/{seq}/image/{stamp}.png"
        gt_rel = f"void_1500/data/{seq}/ground_truth/{stamp}.png"
        write_rgb(root / img_rel, rgb)
        write_depth16(root / gt_rel, depth, 256.0)
        write_caption(root, "void", split, img_rel[:-4])
        images.append(img_rel)
        gts.append(gt_rel)
    (root / "void_1500" / f"{split}_image.txt").write_text("\n".join(images) + "\n")
    (root / "void_1500" / f"{split}_ground_truth.txt").write_text("\n".join(gts) + "\n")


def c3vd_tree(root: Path, split: str, frames: list[tuple[str, int, np.ndarray, np.ndarray]],
              captions: bool = True) -> None:
    """frames: (sequence, number, rgb, depth millimetres 0-100) -> NNNN_color.png + NNNN_depth.tiff."""
    for seq, num, rgb, depth_mm in frames:
        write_rgb(root / seq / f"{num:04d}_color.png", rgb)
        write_depth16(root / seq / f"{num:04d}_depth.tiff", depth_mm, 65535.0 / 100.0)
        if captions:
            write_caption(root, "c3vd", split, f"{seq}/{num:04d}_color")


# The 22 sequences of C3VD as published (folder names).
C3VD_SEQUENCES = ("cecum_t1_a", "cecum_t1_b", "cecum_t2_a", "cecum_t2_b", "cecum_t2_c", "cecum_t3_a", "cecum_t4_a",
                  "cecum_t4_b", "desc_t4_a", "sigmoid_t1_a", "sigmoid_t2_a", "sigmoid_t3_a", "sigmoid_t3_b",
                  "trans_t1_a", "trans_t1_b", "trans_t2_a", "trans_t2_b", "trans_t2_c", "trans_t3_a", "trans_t3_b",
                  "trans_t4_a", "trans_t4_b")


def lidar_depth(shape: tuple[int, int], seed: int, density: float = 0.16) -> np.ndarray:
    """KITTI-like sparse ground truth (metres, multiples of 1/256): nothing in the top 35 % of the
    frame, a ``density`` fraction of the rest valid, nearer towards the bottom."""
    h, w = shape
    rng = np.random.default_rng(seed)
    rows = np.arange(h, dtype=np.float32)[:, None] / h
    depth = np.clip(4.0 / np.maximum(rows - 0.3, 0.02), 2.0, 120.0) * rng.uniform(0.8, 1.2, size=(h, w))
    depth = np.round(depth * 256.0) / 256.0
    depth[(rng.random((h, w)) > density) | (rows < 0.35)] = 0.0
    return depth.astype(np.float32)


def folder_tree(root: Path, frames: list[tuple[str, np.ndarray, np.ndarray, str]], npy: tuple[str, ...] = (),
                split: dict[str, list[str]] | None = None) -> None:
    """frames: (name, rgb, depth metres, caption); names in ``npy`` get .npy depth, others 16-bit mm PNG."""
    for name, rgb, depth, caption in frames:
        write_rgb(root / "rgb" / f"{name}.png", rgb)
        if name in npy:
            (root / "depth" / name).parent.mkdir(parents=True, exist_ok=True)
            np.save(root / "depth" / f"{name}.npy", depth.astype(np.float32))
        else:
            write_depth16(root / "depth" / f"{name}.png", depth, 1000.0)
        (root / "captions" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "captions" / f"{name}.txt").write_text(caption + "\n")
    for name, names in (split or {}).items():
        (root / f"{name}.txt").write_text("\n".join(names) + "\n")
