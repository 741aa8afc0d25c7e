"""Writers of small zero-shot dataset trees in each set's public layout (test fixtures).

Each writer takes frames of (rgb uint8 (H, W, 3), depth in the set's unit, extras) and
writes them as the public release stores them; captions go to the released one-file,
one-line-per-sample location (ROOT/text/<set>/<set>_all.txt) in loader order.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from train_trees import write_depth16, write_rgb


def _captions(root: Path, folder: str, file: str, lines: list[str] | None) -> None:
    if lines is not None:
        p = root / "text" / folder / file
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("\n".join(lines) + "\n")


def sunrgbd_tree(root: Path, frames: list[tuple[str, np.ndarray, np.ndarray]], captions: list[str] | None) -> None:
    """frames: (sample folder e.g. 'kv2/kinect2data/000002', rgb, depth metres) -> image/ + depth/ under
    SUNRGBD/, listed in data_splits/sunrgbd/sunrgbd_testing_{images,depths}.txt (depth: uint16 / 10000)."""
    images, depths = [], []
    for folder, rgb, depth in frames:
        name = folder.rsplit("/", 1)[-1]
        img_rel, depth_rel = f"SUNRGBD/{folder}/image/{name}.jpg", f"SUNRGBD/{folder}/depth/{name}.png"
        write_rgb(root / img_rel, rgb)
        write_depth16(root / depth_rel, depth, 10000.0)
        images.append(img_rel)
        depths.append(depth_rel)
    split_dir = root / "data_splits" / "sunrgbd"
    split_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / "sunrgbd_testing_images.txt").write_text("\n".join(images) + "\n")
    (split_dir / "sunrgbd_testing_depths.txt").write_text("\n".join(depths) + "\n")
    _captions(root, "sunrgbd", "sunrgbd_all.txt", captions)


def ibims_tree(root: Path, frames: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
               captions: list[str] | None) -> None:
    """frames: (name, rgb, depth metres, invalid mask, transparent mask) -> rgb/ depth/ mask_invalid/
    mask_transp/ + imagelist.txt (depth: uint16 * 50 / 65535; masks 8-bit, 0 = excluded, 255 = kept)."""
    for name, rgb, depth, invalid, transp in frames:
        write_rgb(root / "rgb" / f"{name}.png", rgb)
        write_depth16(root / "depth" / f"{name}.png", depth, 65535.0 / 50.0)
        for folder, mask in (("mask_invalid", invalid), ("mask_transp", transp)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(root / folder / f"{name}.png"), np.where(mask, 255, 0).astype(np.uint8))
    (root / "imagelist.txt").write_text("\n".join(f[0] for f in frames) + "\n")
    _captions(root, "ibims1", "ibims1_all.txt", captions)


def diode_tree(root: Path, frames: list[tuple[str, np.ndarray, np.ndarray]], captions: list[str] | None) -> None:
    """frames: ('scene_x/scan_y/name', rgb, depth metres) -> <name>.png + _depth.npy (H, W, 1) + _depth_mask.npy."""
    for rel, rgb, depth in frames:
        write_rgb(root / f"{rel}.png", rgb)
        np.save(root / f"{rel}_depth.npy", depth[:, :, None].astype(np.float32))
        np.save(root / f"{rel}_depth_mask.npy", (depth > 0).astype(np.float32))
    _captions(root, "diode_outdoor", "diode_outdoor_all.txt", captions)


def hypersim_tree(root: Path, frames: list[tuple[str, int, int, np.ndarray, np.ndarray]],
                  captions: list[str] | None) -> None:
    """frames: (scene, camera, frame, rgb, distance metres (768, 1024)) -> tonemap.jpg + depth_meters.hdf5."""
    import h5py

    for scene, cam, num, rgb, distance in frames:
        images = root / scene / "images"
        write_rgb(images / f"scene_cam_{cam:02d}_final_preview" / f"frame.{num:04d}.tonemap.jpg", rgb)
        geo = images / f"scene_cam_{cam:02d}_geometry_hdf5"
        geo.mkdir(parents=True, exist_ok=True)
        with h5py.File(geo / f"frame.{num:04d}.depth_meters.hdf5", "w") as f:
            f.create_dataset("dataset", data=distance.astype(np.float16))
    _captions(root, "hypersim", "hypersim_all.txt", captions)


def simcol_tree(root: Path, folders: dict[str, list[tuple[int, np.ndarray, np.ndarray]]]) -> None:
    """folders: {'SyntheticColon_I/Frames_S5': [(n, rgb, depth mm)]} -> FrameBuffer_NNNN.png + Depth_NNNN.png
    (depth: uint16 * 200 / (255 * 256)), listed in misc/test_file.txt as the release does ('<folder>/')."""
    for folder, frames in folders.items():
        for num, rgb, depth in frames:
            write_rgb(root / folder / f"FrameBuffer_{num:04d}.png", rgb)
            write_depth16(root / folder / f"Depth_{num:04d}.png", depth, 255.0 * 256.0 / 200.0)
    (root / "misc").mkdir(parents=True, exist_ok=True)
    (root / "misc" / "test_file.txt").write_text("".join(f"{folder}/\n" for folder in folders))
