"""Evaluation protocol on fixture trees: crops, depth caps, KITTI KB crop, per-image averaging.

A head whose last layers are set by hand predicts the same depth at every pixel, so the
expected metrics follow from the ground truth written into each fixture, by hand.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tr2m_edge.checkpoint import Checkpoint, save_checkpoint
from tr2m_edge.config import get_preset
from tr2m_edge.train.datasets import DatasetSpec
from tr2m_edge.train.datasets import open_dataset
from tr2m_edge.train.evaluation import derange_by_group, evaluate, evaluate_checkpoint
from tr2m_edge.model import build_model
from tr2m_edge.train.state import load_trained_model

from train_trees import c3vd_tree, folder_tree, kitti_tree, nyu_tree, rgb_image, void_tree

L = math.log


def constant_checkpoint(path: Path, depth: float) -> Path:
    """A tiny-preset head predicting ``depth`` metres everywhere: A ~ 0, B = 1 / depth."""
    cfg = get_preset("tiny")
    state = {k: v.clone() for k, v in build_model(cfg).head.state_dict().items()}
    state["output_conv_scale2.2.weight"].zero_()
    state["output_conv_scale2.2.bias"].fill_(-50.0)  # A = 0.01 e^-50: A * D_r vanishes
    state["output_conv_shift2.2.weight"].zero_()
    state["output_conv_shift2.2.bias"].fill_(math.log(100.0 / depth))  # B = 0.01 e^b = 1 / depth
    save_checkpoint(Checkpoint(config=cfg, head=state), path)
    return path


def two_four(pred: float = 3.0, scale: float = 1.0) -> dict[str, float]:
    """Metrics, by hand, of a constant ``pred * scale`` against half 2, half 4 (x scale)."""
    e = [L(3 / 2), L(3 / 4)]
    return {"d1": 0.0, "d2": 1.0, "d3": 1.0, "abs_rel": (0.5 + 0.25) / 2, "sq_rel": (1 / 2 + 1 / 4) / 2 * scale,
            "rmse": 1.0 * scale, "rmse_log": math.sqrt((e[0] ** 2 + e[1] ** 2) / 2),
            "log10": (abs(math.log10(2 / 3)) + abs(math.log10(4 / 3))) / 2,
            "silog": 100 * math.sqrt((e[0] ** 2 + e[1] ** 2) / 2 - ((e[0] + e[1]) / 2) ** 2)}


def six() -> dict[str, float]:
    """Constant 3 against 6 everywhere."""
    return {"d1": 0.0, "d2": 0.0, "d3": 0.0, "abs_rel": 0.5, "sq_rel": 9 / 6, "rmse": 3.0, "rmse_log": L(2),
            "log10": math.log10(2), "silog": 0.0}


def _check(got: dict[str, float], expected: dict[str, float]) -> None:
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, rel=1e-4, abs=1e-5), k


def _eigen_frame(inside_lo: float, inside_hi: float, outside: float, too_small: float, too_big: float) -> np.ndarray:
    """480x640 ground truth: the Eigen crop (rows 45:471, cols 41:601) holds ``inside_lo`` on
    its left half and ``inside_hi`` on its right; its first 10 rows are below the valid
    range, its last 10 above it; everything outside the crop is ``outside``."""
    d = np.full((480, 640), outside, np.float32)
    d[45:471, 41:321] = inside_lo
    d[45:471, 321:601] = inside_hi
    d[45:55, 41:601] = too_small
    d[461:471, 41:601] = too_big
    return d


@pytest.fixture(scope="module")
def ckpt3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return constant_checkpoint(tmp_path_factory.mktemp("ck") / "three.pt", 3.0)


def test_nyu_eigen_crop_depth_cap_and_averaging(tmp_path: Path, ckpt3: Path) -> None:
    first = _eigen_frame(2.0, 4.0, outside=9.0, too_small=0.0, too_big=12.0)
    second = np.full((480, 640), 0.5, np.float32)
    second[45:471, 41:601] = 6.0
    nyu_tree(tmp_path, "test", [("bathroom", 1, rgb_image((480, 640), 1), first),
                                ("kitchen", 2, rgb_image((480, 640), 2), second)])
    out = tmp_path / "nyu.json"
    result = evaluate_checkpoint(ckpt3, DatasetSpec("nyu", root=str(tmp_path), split="test"), output=out,
                                 progress=False)
    assert result.input_size == (434, 560) and result.crop == "eigen" and result.count == 2
    _check(result.per_image[0], two_four())
    _check(result.per_image[1], six())
    _check(result.metrics, {k: (two_four()[k] + six()[k]) / 2 for k in six()})
    data = json.loads(out.read_text())
    assert data["metrics"]["abs_rel"] == pytest.approx((0.375 + 0.5) / 2, rel=1e-4)
    assert data["depth_range"] == [0.001, 10.0] and len(data["per_image"]) == 2


def test_kitti_ground_truth_kb_cropped_first_then_garg_crop(tmp_path: Path, ckpt3: Path) -> None:
    # KB crop of a 375x1242 frame: rows 23:375, cols 13:1229; the Garg crop of that 352x1216
    # frame: rows 143:349, cols 43:1172, i.e. frame rows 166:372, cols 56:1185.
    gt = np.zeros((375, 1242), np.float32)
    gt[23:166, 13:1229] = 50.0  # inside the KB crop but above its Garg crop: not evaluated
    gt[153:166, 44:1197] = 50.0  # the Garg crop of the full frame would take these rows: not evaluated
    gt[166:372, 56:620] = 2.0  # Garg crop of the KB crop, left 564 columns
    gt[166:372, 620:1184] = 4.0  # right 564 columns (column 1184 stays 0)
    gt[372:, :] = 50.0  # below the Garg crop: not evaluated
    kitti_tree(tmp_path, "test", [("2011_09_26_drive_0002_sync", 69, rgb_image((375, 1242), 3), gt)])
    spec = DatasetSpec("kitti", root=str(tmp_path), split="test")
    result = evaluate_checkpoint(ckpt3, spec, progress=False)
    assert result.input_size == (350, 1204) and result.crop == "garg" and result.depth_range == (1e-3, 80.0)
    _check(result.metrics, two_four())
    assert result.per_image[0]["pixels"] == (349 - 143) * 1128
    model, _ = load_trained_model(ckpt3)
    pred = evaluate(model, open_dataset(spec), keep_predictions=True).per_image[0]["pred"]
    assert pred.shape == (352, 1216) and np.allclose(pred, 3.0, rtol=1e-5)  # scored at 352x1216, nothing pasted


def test_void_range_and_c3vd_millimetres(tmp_path: Path, ckpt3: Path) -> None:
    void_gt = _eigen_frame(2.0, 4.0, outside=3.5, too_small=0.1, too_big=7.0)  # VOID keeps 0.2 < d < 5
    void_tree(tmp_path / "void", "test", [("mechanical_lab", "1.0", rgb_image((480, 640), 4), void_gt)])
    _check(evaluate_checkpoint(ckpt3, DatasetSpec("void", root=str(tmp_path / "void"), split="test"),
                               progress=False).metrics, two_four())
    mm = np.full((28, 40), 20.0, np.float32)
    mm[:, 20:] = 40.0
    c3vd_tree(tmp_path / "c3vd", "test", [("cecum_t1_a", 0, rgb_image((28, 40), 5), mm)])
    ckpt30 = constant_checkpoint(tmp_path / "thirty.pt", 30.0)
    result = evaluate_checkpoint(ckpt30, DatasetSpec("c3vd", root=str(tmp_path / "c3vd"), split="test"),
                                 progress=False)
    assert result.input_size == (434, 560) and result.crop == "none"  # released: 480x640 frames -> 434x560
    _check(result.metrics, two_four(scale=10.0))
    assert result.per_image[0]["pixels"] == 480 * 640  # scored at the loader's 480x640


def test_folder_eval_and_caption_shuffle(tmp_path: Path, ckpt3: Path) -> None:
    d = np.full((20, 30), 2.0, np.float32)
    d[:, 15:] = 4.0
    folder_tree(tmp_path, [("a", rgb_image((20, 30), 6), d, "a warehouse aisle"),
                           ("b", rgb_image((20, 30), 7), d, "a farm field")])
    result = evaluate_checkpoint(ckpt3, DatasetSpec("folder", root=str(tmp_path), split="test"), input_size="model",
                                 progress=False)
    _check(result.metrics, two_four())
    assert [r["caption"] for r in result.per_image] == ["a warehouse aisle", "a farm field"]
    shuffled = evaluate_checkpoint(ckpt3, DatasetSpec("folder", root=str(tmp_path), split="test"),
                                   input_size=(28, 42), shuffle_captions=0, progress=False)
    assert [r["caption"] for r in shuffled.per_image] == ["a farm field", "a warehouse aisle"]
    assert shuffled.input_size == (28, 42)


def test_derange_by_group_gives_each_sample_another_groups_caption() -> None:
    groups = ["tabletop", "room", "street"] * 4
    perm = derange_by_group(groups, seed=3)
    assert all(groups[p] != g for p, g in zip(perm, groups))
    assert perm == derange_by_group(groups, seed=3)
    assert derange_by_group(["a", "a"], 0) == [1, 0]  # one group: any other sample


def test_constant_head_really_is_constant(ckpt3: Path) -> None:
    model = build_model(get_preset("tiny"))
    model.head.load_state_dict(torch.load(ckpt3, weights_only=True)["head"])
    out = model(torch.randn(1, 3, 140, 182), text_emb=torch.randn(1, 64))
    assert torch.allclose(out.raw_depth, torch.full_like(out.raw_depth, 3.0), rtol=1e-5)
