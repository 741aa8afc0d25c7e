"""Dataset readers on small fixture trees written in each dataset's public layout."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tr2m_edge.errors import ConfigError, DataError
from tr2m_edge.train.augment import AugmentConfig
from tr2m_edge.train.datasets import DatasetSpec, open_dataset
from tr2m_edge.train.datasets.public import C3vdDataset, KittiDataset, NyuDataset, VoidDataset
from tr2m_edge.train.datasets.folder import FolderDataset

from train_trees import (CAPTION_LINES, c3vd_tree, folder_tree, kitti_tree, nyu_tree, rgb_image, void_tree,
                         write_depth16, write_rgb)


def _depth(shape: tuple[int, int], seed: int, scale: float, lo: int, hi: int) -> np.ndarray:
    """Depth whose values survive the 16-bit encoding exactly (integers / scale), some zeros."""
    rng = np.random.default_rng(seed)
    d = rng.integers(lo, hi, size=shape).astype(np.float32) / scale
    d[0, :3] = 0.0
    return d


def test_nyu_bts_layout(tmp_path: Path) -> None:
    d0, d1 = _depth((24, 32), 0, 1000.0, 500, 9000), _depth((24, 32), 1, 1000.0, 500, 9000)
    nyu_tree(tmp_path, "train", [("kitchen_0028b", 45, rgb_image((24, 32), 0), d0),
                                 ("office_0003", 7, rgb_image((24, 32), 1), d1)])
    nyu_tree(tmp_path, "test", [("bathroom", 12, rgb_image((24, 32), 2), d1)], split_file=False)
    ds = NyuDataset(tmp_path, "train")
    assert len(ds) == 2 and ds.protocol.max_depth == 10.0 and ds.protocol.crop == "eigen"
    s = ds[0]
    assert s["image"].shape == (3, 24, 32) and 0.0 <= float(s["image"].min()) and float(s["image"].max()) <= 1.0
    assert np.array_equal(s["depth"][0].numpy(), d0)  # 16-bit PNG / 1000
    assert s["caption"] == CAPTION_LINES[0] and s["group"] == "nyu"
    test = NyuDataset(tmp_path, "test")  # no split file: every rgb_* with its sync_depth_* partner
    assert len(test) == 1 and np.array_equal(test[0]["depth"][0].numpy(), d1)
    # training view: resized, random caption line
    train = NyuDataset(tmp_path, "train", size=(14, 28))
    views = [train[(1, seed)] for seed in range(12)]
    assert views[0]["image"].shape == (3, 14, 28) and views[0]["depth"].shape == (1, 14, 28)
    assert len({v["caption"] for v in views}) > 3


def test_nyu_missing_caption_names_the_file(tmp_path: Path) -> None:
    nyu_tree(tmp_path, "train", [("kitchen", 1, rgb_image((8, 8), 0), _depth((8, 8), 0, 1000.0, 500, 900))],
             captions=False)
    ds = NyuDataset(tmp_path, "train")
    with pytest.raises(DataError, match=r"Caption file not found: .*text/nyu/train/kitchen/rgb_00001\.txt"):
        ds[0]
    assert NyuDataset(tmp_path, "train", default_caption="a kitchen")[0]["caption"] == "a kitchen"
    with pytest.raises(DataError, match="NYUv2 splits are 'train' and 'test'"):
        NyuDataset(tmp_path, "val")


def test_kitti_eigen_layout_kb_crop_and_missing_ground_truth(tmp_path: Path) -> None:
    shape = (375, 1242)
    depth = _depth(shape, 3, 256.0, 256, 80 * 256)
    kitti_tree(tmp_path, "train", [("2011_09_26_drive_0002_sync", 69, rgb_image(shape, 3), depth),
                                   ("2011_09_26_drive_0002_sync", 70, rgb_image(shape, 4), None)])
    ds = KittiDataset(tmp_path, "train")
    assert len(ds) == 1, "lines without ground truth are skipped"
    top, left = 375 - 352, (1242 - 1216) // 2
    kb = depth[top:top + 352, left:left + 1216]  # the 352x1216 KB crop: bottom rows, centred, / 256
    # both views: image and ground truth cut to the KB crop first, as the released loader does
    view = ds[0]
    assert view["image"].shape == (3, 352, 1216) and np.array_equal(view["depth"][0].numpy(), kb)
    crop = ds[(0, 1)]  # training view without resize
    assert crop["image"].shape == (3, 352, 1216)
    assert np.array_equal(crop["depth"][0].numpy(), kb)
    with pytest.raises(DataError, match=r"No KITTI split file for 'test': expected eigen_test_files_with_gt.txt"):
        KittiDataset(tmp_path, "test")


def test_void_list_files(tmp_path: Path) -> None:
    depth = _depth((12, 16), 5, 256.0, 51, 5 * 256)
    void_tree(tmp_path, "test", [("birthplace_of_internet", "1552097915.4800", rgb_image((12, 16), 5), depth)])
    ds = VoidDataset(tmp_path, "test")
    assert len(ds) == 1 and ds.protocol.min_depth == 0.2 and ds.protocol.max_depth == 5.0
    assert np.array_equal(ds[0]["depth"][0].numpy(), depth)
    with pytest.raises(DataError, match=r"void_1500/train_image.txt does not exist"):
        VoidDataset(tmp_path, "train")


def test_c3vd_colour_and_tiff_depth_in_millimetres(tmp_path: Path) -> None:
    raw = np.random.default_rng(6).integers(100, 65535, size=(10, 12)).astype(np.float64)
    depth_mm = (raw * 100.0 / 65535.0).astype(np.float32)
    c3vd_tree(tmp_path, "test", [("cecum_t1_a", 0, rgb_image((10, 12), 6), depth_mm),
                                 ("cecum_t1_a", 1, rgb_image((10, 12), 7), depth_mm)])
    ds = C3vdDataset(tmp_path, "test")
    assert len(ds) == 2 and ds.protocol.max_depth == 100.0
    # the released loader resizes to 480x640: ground truth by nearest neighbour (OpenCV: floor(i * in / out))
    rows, cols = np.arange(480) * 10 // 480, np.arange(640) * 12 // 640
    assert ds[0]["image"].shape == (3, 480, 640)
    assert np.allclose(ds[0]["depth"][0].numpy(), depth_mm[rows][:, cols], rtol=1e-6)
    (tmp_path / "cecum_t1_a" / "0001_depth.tiff").unlink()
    with pytest.raises(DataError, match=r"No depth for .*0001_color.png: expected 0001_depth.tiff"):
        C3vdDataset(tmp_path, "test")


def test_folder_format_png_millimetres_npy_metres_and_splits(tmp_path: Path) -> None:
    d_png = _depth((8, 10), 8, 1000.0, 300, 5000)
    d_npy = np.random.default_rng(9).random((8, 10)).astype(np.float32) * 20
    d_npy[1, 1] = np.nan
    folder_tree(tmp_path, [("a", rgb_image((8, 10), 8), d_png, "a warehouse aisle"),
                           ("sub/b", rgb_image((8, 10), 9), d_npy, "a farm field on the left")],
                npy=("sub/b",), split={"train": ["sub/b"]})
    everything = FolderDataset(tmp_path, "test")  # no test.txt: every image under rgb/
    assert [s.rel for s in everything.samples] == ["a", "sub/b"]
    assert np.array_equal(everything[0]["depth"][0].numpy(), d_png)
    b = FolderDataset(tmp_path, "train")
    assert len(b) == 1
    got = b[0]["depth"][0].numpy()
    assert got[1, 1] == 0.0 and np.allclose(np.delete(got.ravel(), 11), np.delete(d_npy.ravel(), 11))
    flipped = FolderDataset(tmp_path, "train", augment=AugmentConfig(flip_p=1.0, photometric_p=0.0))[(0, 3)]
    assert flipped["caption"] == "a farm field on the right"
    assert torch.equal(flipped["depth"][0], torch.from_numpy(got[:, ::-1].copy()))


def test_folder_format_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="has no rgb/ sub-folder"):
        FolderDataset(tmp_path)
    write_rgb(tmp_path / "rgb" / "x.png", rgb_image((6, 6), 0))
    with pytest.raises(DataError, match=r"No depth for .*x.png: expected depth/x.png \(16-bit millimetres\)"):
        FolderDataset(tmp_path)
    (tmp_path / "depth").mkdir()
    cv2.imwrite(str(tmp_path / "depth" / "x.png"), np.zeros((6, 6), np.uint8))
    with pytest.raises(DataError, match="is uint8, expected 16-bit"):
        FolderDataset(tmp_path, default_caption="c")[0]
    write_depth16(tmp_path / "depth" / "x.png", np.ones((5, 6), np.float32), 1000.0)
    with pytest.raises(DataError, match="must be aligned pixel for pixel"):
        FolderDataset(tmp_path, default_caption="c")[0]


def test_open_dataset_from_specs(tmp_path: Path) -> None:
    folder_tree(tmp_path / "f", [("a", rgb_image((8, 10), 1), _depth((8, 10), 1, 1000.0, 300, 900), "a room")])
    ds = open_dataset(DatasetSpec("folder", root=str(tmp_path / "f"), split="test", max_depth=5.0), size=(14, 14))
    assert ds.protocol.max_depth == 5.0 and ds[(0, 0)]["image"].shape == (3, 14, 14)
    syn = open_dataset(DatasetSpec("synthetic", count=3, seed=2), size=(28, 28))
    assert len(syn) == 3 and syn.protocol.variance_focus == 0.6
    with pytest.raises(ConfigError, match="Unknown dataset 'sun'. Available: nyu, kitti, void, c3vd, folder, synthetic, "
                                          "sunrgbd, ibims, diode_outdoor, hypersim, simcol"):
        DatasetSpec("sun", root="x")
    with pytest.raises(ConfigError, match="Dataset 'nyu' needs a root folder"):
        DatasetSpec("nyu")
    with pytest.raises(DataError, match="does not exist or is not a folder"):
        open_dataset(DatasetSpec("kitti", root=str(tmp_path / "nope")))
