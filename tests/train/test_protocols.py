"""The released evaluation protocol's pixel sets and conventions, on fixtures in the public layouts.

KITTI scores the Garg crop of the 352x1216 KB crop (not of the full frame), C3VD scores at
480x640 with the released test split and folder captions, split files are found where
the released code keeps them, and NYU training drops the GT border.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tr2m_edge.metrics import crop_mask
from tr2m_edge.model.encoders import tokenize
from tr2m_edge.train.datasets import C3vdDataset, DatasetSpec, KittiDataset, NyuDataset, VoidDataset
from tr2m_edge.train.datasets.public import c3vd_caption
from tr2m_edge.train.evaluation import evaluate_checkpoint

from test_evaluation import constant_checkpoint
from train_trees import C3VD_SEQUENCES, c3vd_tree, kitti_tree, lidar_depth, nyu_tree, rgb_image, void_tree

# (drive, frame size) of three KITTI recording days: the raw frames are not all 375x1242
KITTI_DRIVES = (("2011_09_26_drive_0002_sync", (375, 1242)), ("2011_09_30_drive_0016_sync", (370, 1226)),
                ("2011_10_03_drive_0047_sync", (376, 1241)))


def _released_kitti_pixels(gt: np.ndarray) -> int:
    """Scored pixels the released way, computed here independently: KB crop first, then Garg on 352x1216."""
    h, w = gt.shape
    kb = gt[h - 352:, (w - 1216) // 2:(w - 1216) // 2 + 1216]
    garg = kb[int(0.40810811 * 352):int(0.99189189 * 352), int(0.03594771 * 1216):int(0.96405229 * 1216)]
    return int(np.count_nonzero((garg > 1e-3) & (garg < 80.0)))


def test_kitti_scores_the_released_pixel_set(tmp_path: Path) -> None:
    frames = [(drive, 5 + i, rgb_image(shape, i), lidar_depth(shape, i)) for i, (drive, shape) in enumerate(KITTI_DRIVES)]
    dense = np.full((375, 1242), 10.0, np.float32)
    frames.append(("2011_09_26_drive_0009_sync", 7, rgb_image((375, 1242), 9), dense))
    kitti_tree(tmp_path, "test", frames)
    # the model's own input size keeps the test fast: the scored pixel set does not depend on it
    result = evaluate_checkpoint(constant_checkpoint(tmp_path / "ck.pt", 10.0),
                                 DatasetSpec("kitti", root=str(tmp_path), split="test"), input_size="model",
                                 progress=False)
    pixels = [row["pixels"] for row in result.per_image]
    gts = [np.round(f[3] * 256.0) / 256.0 for f in frames]
    assert pixels == [_released_kitti_pixels(g) for g in gts]
    # dense ground truth: the Garg crop of 352x1216 (rows 143:349, cols 43:1172), whatever the frame size
    assert pixels[-1] == 206 * 1129 == 232_574
    # the full-frame Garg crop (prediction pasted into the frame) would score more pixels: 251,354 when dense
    full = [int(np.count_nonzero((g > 1e-3) & (g < 80.0) & crop_mask(g.shape, "garg"))) for g in gts]
    assert full[-1] == 218 * 1153 and all(f > p for f, p in zip(full, pixels))


def _c3vd_release(root: Path, frames_per_sequence: int = 2, shape: tuple[int, int] = (6, 8)) -> None:
    depth = np.full(shape, 50.0, np.float32)
    frames = [(seq, n, rgb_image(shape, i * 7 + n), depth) for i, seq in enumerate(C3VD_SEQUENCES)
              for n in range(frames_per_sequence)]
    c3vd_tree(root, "test", frames, captions=False)


def test_c3vd_released_test_split_and_folder_captions(tmp_path: Path) -> None:
    _c3vd_release(tmp_path)
    test = C3vdDataset(tmp_path, "test")
    sequences = sorted({ref.image.parent.name for ref in test.samples})
    assert len(test) == 16 and sequences == ["cecum_t1_a", "cecum_t2_a", "cecum_t3_a", "sigmoid_t1_a",
                                             "sigmoid_t3_b", "trans_t2_b", "trans_t3_b", "trans_t4_b"]
    train = C3vdDataset(tmp_path, "train")
    assert len(train) == 28 and not {ref.image.parent for ref in train.samples} & {ref.image.parent for ref in test.samples}
    assert test[0]["caption"] == "The image shows a medical scene of cecum with texture type one."
    assert test[len(test) - 1]["caption"] == "The image shows a medical scene of transcending colon with texture type four."
    assert c3vd_caption("desc_t4_a") == "The image shows a medical scene of descending colon with texture type four."
    assert c3vd_caption("notes") is None
    # the released string has two spaces before "texture"; CLIP's tokenizer gives the same tokens
    released = "The image shows a medical scene of sigmoid colon with  texture type three."
    assert torch.equal(tokenize([released]), tokenize([c3vd_caption("sigmoid_t3_b")]))
    # a split file wins over the released sequence positions; caption files over folder captions
    (tmp_path / "data_splits" / "c3vd").mkdir(parents=True)
    (tmp_path / "data_splits" / "c3vd" / "test.txt").write_text("desc_t4_a/0001_color.png\n")
    (tmp_path / "text" / "c3vd" / "test" / "desc_t4_a").mkdir(parents=True)
    (tmp_path / "text" / "c3vd" / "test" / "desc_t4_a" / "0001_color.txt").write_text("a written caption\n")
    listed = C3vdDataset(tmp_path, "test")
    assert len(listed) == 1 and listed[0]["caption"] == "a written caption"


def test_c3vd_scored_at_480x640_with_nearest_ground_truth(tmp_path: Path) -> None:
    shape = (1080, 1350)  # C3VD's frame size
    rng = np.random.default_rng(3)
    depth = np.round(rng.uniform(1.0, 99.0, size=shape) * 655.35) / 655.35
    depth[rng.random(shape) < 0.2] = 0.0  # no ground truth
    rgb = rgb_image(shape, 4)
    c3vd_tree(tmp_path, "test", [("cecum_t1_a", 0, rgb, depth.astype(np.float32))], captions=False)
    ds = C3vdDataset(tmp_path, "test")
    image = ds[0]["image"].permute(1, 2, 0).numpy()
    pil = np.asarray(Image.fromarray(rgb).resize((640, 480), Image.BILINEAR), np.float32) / 255.0
    assert image.shape == (480, 640, 3) and np.array_equal(image, pil)  # PIL's antialiased bilinear, exactly
    result = evaluate_checkpoint(constant_checkpoint(tmp_path / "ck.pt", 30.0),
                                 DatasetSpec("c3vd", root=str(tmp_path), split="test"), progress=False)
    sampled = depth[np.arange(480) * 1080 // 480][:, np.arange(640) * 1350 // 640]
    assert result.per_image[0]["pixels"] == int(np.count_nonzero((sampled > 0.1) & (sampled < 100.0)))
    assert result.input_size == (434, 560)


def test_split_files_in_the_released_data_splits_folders(tmp_path: Path) -> None:
    d = np.full((12, 16), 2.0, np.float32)
    nyu_tree(tmp_path / "nyu", "test", [("bathroom", 1, rgb_image((12, 16), 1), d),
                                        ("kitchen", 2, rgb_image((12, 16), 2), d)])
    listing = tmp_path / "nyu" / "train_test_inputs" / "nyudepthv2_test_files_with_gt.txt"
    (tmp_path / "nyu" / "data_splits" / "nyudepthv2").mkdir(parents=True)
    (tmp_path / "nyu" / "data_splits" / "nyudepthv2" / listing.name).write_text(listing.read_text().splitlines()[1])
    listing.unlink()  # only the released location remains: it lists the kitchen frame alone
    nyu = NyuDataset(tmp_path / "nyu", "test")
    assert [ref.rel for ref in nyu.samples] == ["kitchen/rgb_00002"]
    kitti_tree(tmp_path / "kitti", "test", [("2011_09_26_drive_0002_sync", 69, rgb_image((375, 1242), 3),
                                            lidar_depth((375, 1242), 3))])
    (tmp_path / "kitti" / "data_splits").mkdir()
    (tmp_path / "kitti" / "splits").rename(tmp_path / "kitti" / "data_splits" / "kitti")
    assert len(KittiDataset(tmp_path / "kitti", "test")) == 1
    void_tree(tmp_path / "void", "test", [("lab", "1.0", rgb_image((12, 16), 4), d)])
    (tmp_path / "void" / "data_splits" / "void").mkdir(parents=True)
    for name in ("test_image.txt", "test_ground_truth.txt"):
        (tmp_path / "void" / "void_1500" / name).rename(tmp_path / "void" / "data_splits" / "void" / name)
    assert len(VoidDataset(tmp_path / "void", "test")) == 1


def test_nyu_training_keeps_ground_truth_inside_the_released_border(tmp_path: Path) -> None:
    depth = np.full((480, 640), 3.0, np.float32)
    nyu_tree(tmp_path, "train", [("kitchen_0028b", 45, rgb_image((480, 640), 0), depth)])
    ds = NyuDataset(tmp_path, "train")
    train = ds[(0, 5)]["depth"][0].numpy()  # training view, native size, no augmentation
    assert np.count_nonzero(train) == (472 - 45) * (608 - 43) == 241_255
    rows, cols = np.where(train.any(1))[0], np.where(train.any(0))[0]
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (45, 471, 43, 607) and math.isclose(float(train.max()), 3.0)
    assert np.count_nonzero(ds[0]["depth"][0].numpy()) == 480 * 640  # evaluation view: untouched (Eigen crop)


@pytest.mark.parametrize("split, count", [("test", 2), ("val", 2)])
def test_c3vd_small_roots_use_every_frame(tmp_path: Path, split: str, count: int) -> None:
    c3vd_tree(tmp_path, split, [("trans_t2_b", 0, rgb_image((6, 8), 0), np.ones((6, 8), np.float32)),
                                ("trans_t2_b", 1, rgb_image((6, 8), 1), np.ones((6, 8), np.float32))])
    assert len(C3vdDataset(tmp_path, split)) == count
