"""Zero-shot readers (SUN RGB-D, iBims-1, DIODE outdoor, HyperSim, SimCol) on fixture trees in their
public layouts, and ``tr2m-edge eval --dataset NAME`` on each.

The constant head of test_evaluation predicts one depth everywhere, so each set's metrics
follow by hand from the ground truth written into its fixture: the left half of the scored
region holds 2 and the right half 4 (x10 for SimCol's millimetres), and everything the
protocol must leave out (outside the crop, masked, beyond the cap) holds values that would
change the metrics if it were scored.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import functional as TF

from tr2m_edge.errors import DataError
from tr2m_edge.model import postprocess_depth
from tr2m_edge.train.datasets import (DatasetSpec, DiodeDataset, HypersimDataset, IbimsDataset, SimcolDataset,
                                      SunRgbdDataset, open_dataset)
from tr2m_edge.train.datasets.zeroshot import HYPERSIM_FOCAL, SIMCOL_CAPTION
from tr2m_edge.train.evaluation import embed_captions, evaluate
from tr2m_edge.train.state import load_trained_model

from test_cli_train import run
from test_evaluation import _check, constant_checkpoint, two_four
from train_trees import rgb_image
from zeroshot_trees import diode_tree, hypersim_tree, ibims_tree, simcol_tree, sunrgbd_tree

CAPS = ["a bedroom with a bed and a lamp", "an office with two desks"]


def _halves(shape: tuple[int, int], rows: slice, cols: tuple[int, int, int], outside: float,
            lo: float = 2.0, hi: float = 4.0) -> np.ndarray:
    """``outside`` everywhere but rows x [c0, c1) = lo and rows x [c1, c2) = hi."""
    d = np.full(shape, outside, np.float32)
    d[rows, cols[0]:cols[1]] = lo
    d[rows, cols[1]:cols[2]] = hi
    return d


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[float, Path]:
    folder = tmp_path_factory.mktemp("zs")
    return {3.0: constant_checkpoint(folder / "three.pt", 3.0), 30.0: constant_checkpoint(folder / "thirty.pt", 30.0)}


def _eval_cli(ckpt: Path, name: str, root: Path, out: Path, *extra: str) -> dict:
    assert run(["eval", "--ckpt", str(ckpt), "--dataset", name, "--root", str(root), "--output", str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_sunrgbd_split_lists_eigen_crop_and_518x728(tmp_path: Path, ckpts: dict[float, Path]) -> None:
    shape = (530, 730)  # SUN RGB-D's aligned frame size
    gt = _halves(shape, slice(45, 471), (41, 321, 601), outside=6.0)  # Eigen crop rows 45:471, cols 41:601
    sunrgbd_tree(tmp_path, [("kv2/kinect2data/000002", rgb_image(shape, 1), gt),
                            ("kv1/NYUdata/NYU0001", rgb_image(shape, 2), gt)], CAPS)
    ds = SunRgbdDataset(tmp_path)
    assert len(ds) == 2 and np.array_equal(ds[1]["depth"][0].numpy(), np.round(gt * 1e4) / 1e4)
    assert [ds[i]["caption"] for i in range(2)] == CAPS  # one line per sample, in loader order
    data = _eval_cli(ckpts[3.0], "sunrgbd", tmp_path, tmp_path / "sun.json")
    assert data["input_size"] == [518, 728] and data["crop"] == "eigen" and data["depth_range"] == [0.001, 8.0]
    _check(data["metrics"], two_four())
    assert [r["pixels"] for r in data["per_image"]] == [426 * 560] * 2


def test_ibims_masks_eigen_crop_and_no_normalisation(tmp_path: Path, ckpts: dict[float, Path]) -> None:
    shape = (480, 640)
    gt = _halves(shape, slice(45, 471), (41, 321, 601), outside=9.5)
    invalid, transp = np.ones(shape, bool), np.ones(shape, bool)
    gt[100:120, 100:200] = 9.0
    invalid[100:120, 100:200] = False  # mask_invalid 0: no ground truth
    gt[300:310, 400:500] = 0.5
    transp[300:310, 400:500] = False  # mask_transp 0: transparent surface, no ground truth
    ibims_tree(tmp_path, [("corridor_01", rgb_image(shape, 3), gt, invalid, transp)], CAPS[:1])
    ds = IbimsDataset(tmp_path)
    depth = ds[0]["depth"][0].numpy()
    assert depth[110, 150] == 0 and depth[305, 450] == 0 and depth[200, 100] == pytest.approx(2.0, abs=1e-3)
    data = _eval_cli(ckpts[3.0], "ibims", tmp_path, tmp_path / "ibims.json")
    assert data["input_size"] == [434, 560] and data["crop"] == "eigen" and data["depth_range"] == [0.001, 10.0]
    assert data["per_image"][0]["pixels"] == 426 * 560 - 20 * 100 - 10 * 100
    # left half lost 20x100 pixels of value 2 (invalid mask), right half 10x100 of value 4 (transparent)
    n_lo, n_hi = 426 * 280 - 2000, 426 * 280 - 1000
    want_abs_rel = (n_lo * 0.5 + n_hi * 0.25) / (n_lo + n_hi)
    assert data["metrics"]["abs_rel"] == pytest.approx(want_abs_rel, abs=2e-4)  # depth quantised to 50/65535 m
    # the released iBims loader feeds [0, 1] images: no ImageNet normalisation (random head to see it)
    model, _ = load_trained_model(ckpts[3.0])
    torch.manual_seed(0)
    for p in model.head.parameters():
        p.data.normal_(0.0, 0.05)
    pred = evaluate(model, ds, keep_predictions=True).per_image[0]["pred"]
    pix = F.interpolate(ds[0]["image"][None], size=(434, 560), mode="bilinear", align_corners=True)
    rel, feats = model.encode_frame(pix)
    raw = model.head_forward(rel, feats, text_emb=embed_captions(model, CAPS[:1])).raw_depth
    want = postprocess_depth(raw, shape, 1e-3, 10.0)[0, 0].detach().numpy()
    assert np.allclose(pred, want, rtol=1e-5, atol=1e-6)
    normalised = evaluate(model, ds, keep_predictions=True, input_size=(434, 560))
    assert normalised.per_image[0]["pred"].std() > 1e-3  # the prediction varies: the check can fail
    ds.protocol = dataclasses.replace(ds.protocol, normalize=True)
    other = evaluate(model, ds, keep_predictions=True).per_image[0]["pred"]
    assert np.abs(other - pred).mean() > 1e-3 * np.abs(pred).mean()


def test_diode_outdoor_loader_resize_and_garg_crop_on_768x1024(tmp_path: Path, ckpts: dict[float, Path]) -> None:
    shape = (768, 1024)
    root = tmp_path / "DIODE" / "val" / "outdoor"
    # Garg crop of 768x1024: rows 313:761, cols 36:987 (halves of 475 columns; column 986 left empty)
    gt = _halves(shape, slice(313, 761), (36, 511, 986), outside=20.0)
    gt[:100] = 90.0  # beyond the 80 m cap
    gt[313:761, 986] = 0.0
    rgb = rgb_image(shape, 5)
    diode_tree(root, [("scene_00022/scan_00193/00022_00193_outdoor_000_010", rgb, gt)], CAPS[:1])
    ds = DiodeDataset(tmp_path / "DIODE", split="val")  # the DIODE folder itself: val/outdoor is found
    sample = ds[0]
    # released: transforms.Resize((480, 640)) on the image tensor (antialiased bilinear); GT stays 768x1024
    want = TF.resize(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0, [480, 640], antialias=True)
    assert sample["depth"].shape == (1, 768, 1024) and torch.allclose(sample["image"], want, atol=1e-6)
    data = _eval_cli(ckpts[3.0], "diode_outdoor", root, tmp_path / "diode.json")
    assert data["input_size"] == [434, 560] and data["crop"] == "garg" and data["depth_range"] == [0.001, 80.0]
    _check(data["metrics"], two_four())
    assert data["per_image"][0]["pixels"] == 448 * 950


def test_hypersim_distance_to_planar_depth_no_crop(tmp_path: Path, ckpts: dict[float, Path]) -> None:
    h, w = 768, 1024
    planar = _halves((h, w), slice(0, h), (0, 512, 1024), outside=0.0)
    x = np.linspace(-0.5 * w + 0.5, 0.5 * w - 0.5, w)[None, :]
    y = np.linspace(-0.5 * h + 0.5, 0.5 * h - 0.5, h)[:, None]
    distance = planar * np.sqrt(x ** 2 + y ** 2 + HYPERSIM_FOCAL ** 2) / HYPERSIM_FOCAL
    distance[:4, :10] = np.nan  # HyperSim marks pixels without geometry with NaN
    hypersim_tree(tmp_path, [("ai_001_001", 0, 3, rgb_image((h, w), 6), distance)], CAPS[1:])
    ds = HypersimDataset(tmp_path)
    depth = ds[0]["depth"][0].numpy()
    stored = distance.astype(np.float16).astype(np.float64)  # the file holds float16, as HyperSim's do
    expected = np.nan_to_num(stored * HYPERSIM_FOCAL / np.sqrt(x ** 2 + y ** 2 + HYPERSIM_FOCAL ** 2))
    assert np.allclose(depth, expected, rtol=1e-6, atol=1e-6) and (depth[:4, :10] == 0).all()
    assert np.abs(depth[4:] - planar[4:]).max() < 4e-3  # float16 storage
    assert ds[0]["image"].shape == (3, 480, 640) and ds[0]["caption"] == CAPS[1]
    data = _eval_cli(ckpts[3.0], "hypersim", tmp_path, tmp_path / "hs.json")
    assert data["input_size"] == [434, 560] and data["crop"] == "none" and data["depth_range"] == [0.001, 80.0]
    assert data["per_image"][0]["pixels"] == h * w - 40
    for k, v in two_four().items():
        assert data["metrics"][k] == pytest.approx(v, rel=2e-3, abs=2e-3), k


def test_simcol_test_file_millimetres_and_fixed_caption(tmp_path: Path, ckpts: dict[float, Path]) -> None:
    shape = (475, 475)  # SimCol frames
    gt = _halves(shape, slice(0, 475), (0, 237, 474), outside=0.0, lo=20.0, hi=40.0)  # mm; column 474 empty
    simcol_tree(tmp_path, {"SyntheticColon_I/Frames_S5": [(0, rgb_image(shape, 7), gt), (1, rgb_image(shape, 8), gt)],
                           "SyntheticColon_II/Frames_B5": [(0, rgb_image(shape, 9), gt)]})
    ds = SimcolDataset(tmp_path)
    assert len(ds) == 3 and ds[2]["caption"] == SIMCOL_CAPTION == (
        "The image shows a medical scene of a cecum with texture type one.")
    depth = ds[0]["depth"][0].numpy()
    assert ds[0]["image"].shape == (3, 480, 640) and depth.shape == shape
    assert np.allclose(depth[:, :474], gt[:, :474], atol=200 / 65280)  # uint16 * 200 / (255 * 256) mm
    data = _eval_cli(ckpts[30.0], "simcol", tmp_path, tmp_path / "simcol.json")
    assert data["input_size"] == [434, 560] and data["depth_range"] == [0.1, 100.0] and data["count"] == 3
    assert [r["pixels"] for r in data["per_image"]] == [475 * 474] * 3
    for k, v in two_four(scale=10.0).items():
        assert data["metrics"][k] == pytest.approx(v, rel=2e-3, abs=2e-3), k


def test_zero_shot_errors_name_what_is_missing(tmp_path: Path) -> None:
    sunrgbd_tree(tmp_path / "sun", [("kv1/b/NYU0002", rgb_image((8, 8), 1), np.ones((8, 8), np.float32))], None)
    with pytest.raises(DataError, match=r"No caption file for sunrgbd: expected .*text/sunrgbd/sunrgbd_all.txt"):
        SunRgbdDataset(tmp_path / "sun")
    assert SunRgbdDataset(tmp_path / "sun", default_caption="a room")[0]["caption"] == "a room"
    with pytest.raises(DataError, match=r"No SUN RGB-D split files for 'test': expected sunrgbd_testing_images.txt"):
        SunRgbdDataset(tmp_path / "sun" / "SUNRGBD", default_caption="x")
    (tmp_path / "ib").mkdir()
    with pytest.raises(DataError, match=r"No iBims image list: expected .*imagelist.txt"):
        IbimsDataset(tmp_path / "ib", default_caption="x")
    with pytest.raises(DataError, match=r"No SimCol test list: expected .*misc/test_file.txt"):
        SimcolDataset(tmp_path / "ib")
    with pytest.raises(DataError, match=r"No hypersim samples found"):
        open_dataset(DatasetSpec("hypersim", root=str(tmp_path / "ib"), split="test", default_caption="x"))
    assert math.isclose(float(HYPERSIM_FOCAL), 886.81)
