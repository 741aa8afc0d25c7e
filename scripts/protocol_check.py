#!/usr/bin/env python
"""Measure the evaluation protocol's conventions on fixtures in the public layouts (issue 9).

Writes small dataset trees (the test suite's fixture writers, tests/train/*_trees.py) into
a temporary folder, evaluates a tiny-preset model with fixed random weights on each, and
reports per dataset what the protocol scores: the pixels per image (the ground truth the
reader hands on, inside the valid range and the crop), the metrics, the input size, the
number of samples of the C3VD split, the captions, the NYU training ground truth.
Only APIs that predate the issue-9 changes are used, so the same script measures the
code before and after them (run it with each checkout on the path).

Usage:  python scripts/protocol_check.py --out after.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "train"))

from train_trees import C3VD_SEQUENCES, c3vd_tree, kitti_tree, lidar_depth, nyu_tree, rgb_image  # noqa: E402

from tr2m_edge.config import get_preset  # noqa: E402
from tr2m_edge.metrics import crop_mask  # noqa: E402
from tr2m_edge.model import build_model  # noqa: E402
from tr2m_edge.train.datasets import DatasetSpec, open_dataset  # noqa: E402
from tr2m_edge.train.evaluation import evaluate  # noqa: E402

KITTI_DRIVES = (("2011_09_26_drive_0002_sync", (375, 1242)), ("2011_09_30_drive_0016_sync", (370, 1226)),
                ("2011_10_03_drive_0047_sync", (376, 1241)), ("2011_09_26_drive_0009_sync", (375, 1242)))


def _scored(ds: Any, i: int) -> int:
    gt = ds[i]["depth"][0].numpy()
    p = ds.protocol
    mask = (gt > p.min_depth) & (gt < p.max_depth)
    if p.crop != "none":
        mask &= crop_mask(gt.shape, p.crop)
    return int(mask.sum())


def _evaluate(model: Any, ds: Any) -> dict[str, Any]:
    result = evaluate(model, ds)
    keys = ("silog", "abs_rel", "d1", "rmse")
    return {"input_size": list(result.input_size), "count": result.count,
            "pixels": [_scored(ds, i) for i in range(len(ds))],
            "per_image": [{k: round(r[k], 5) for k in keys} for r in result.per_image],
            "mean": {k: round(result.metrics[k], 5) for k in keys}}


def _attempt(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the point is to report what the old code does
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}


def check_kitti(tmp: Path, model: Any) -> dict[str, Any]:
    frames = [(d, 5 + i, rgb_image(s, i), lidar_depth(s, i)) for i, (d, s) in enumerate(KITTI_DRIVES[:3])]
    frames.append((KITTI_DRIVES[3][0], 7, rgb_image((375, 1242), 9), np.full((375, 1242), 10.0, np.float32)))
    kitti_tree(tmp / "kitti", "test", frames)
    out = _evaluate(model, open_dataset(DatasetSpec("kitti", root=str(tmp / "kitti"), split="test")))
    released = tmp / "kitti_released"
    kitti_tree(released, "test", frames[:1])
    (released / "data_splits").mkdir()
    (released / "splits").rename(released / "data_splits" / "kitti")
    out["split_in_data_splits_kitti"] = _attempt(
        lambda: len(open_dataset(DatasetSpec("kitti", root=str(released), split="test"))))
    return out


def check_c3vd(tmp: Path, model: Any) -> dict[str, Any]:
    rng = np.random.default_rng(3)
    depth = (np.round(rng.uniform(1.0, 99.0, size=(1080, 1350)) * 655.35) / 655.35).astype(np.float32)
    depth[rng.random(depth.shape) < 0.2] = 0.0
    c3vd_tree(tmp / "c3vd", "test", [("cecum_t1_a", 0, rgb_image((1080, 1350), 4), depth)])
    out = _evaluate(model, open_dataset(DatasetSpec("c3vd", root=str(tmp / "c3vd"), split="test")))
    layout = tmp / "c3vd_release"
    c3vd_tree(layout, "test", [(s, n, rgb_image((6, 8), n), np.full((6, 8), 50.0, np.float32))
                               for s in C3VD_SEQUENCES for n in range(2)], captions=False)
    test = open_dataset(DatasetSpec("c3vd", root=str(layout), split="test"))
    out["release_layout_test_frames"] = len(test)
    out["release_layout_test_sequences"] = sorted({r.image.parent.name for r in test.samples})
    out["caption_without_files"] = _attempt(lambda: test[0]["caption"])
    return out


def check_nyu(tmp: Path) -> dict[str, Any]:
    nyu_tree(tmp / "nyu", "train", [("kitchen_0028b", 45, rgb_image((480, 640), 0), np.full((480, 640), 3.0, np.float32))])
    ds = open_dataset(DatasetSpec("nyu", root=str(tmp / "nyu"), split="train"))
    listing = tmp / "nyu" / "train_test_inputs" / "nyudepthv2_train_files_with_gt.txt"
    (tmp / "nyu" / "data_splits" / "nyudepthv2").mkdir(parents=True)
    listing.rename(tmp / "nyu" / "data_splits" / "nyudepthv2" / listing.name)
    nyu_tree(tmp / "nyu", "train", [("office_0003", 7, rgb_image((480, 640), 1), np.ones((480, 640), np.float32))],
             split_file=False)  # a second frame the released list does not name
    return {"train_view_gt_pixels": int(np.count_nonzero(ds[(0, 1)]["depth"].numpy())),
            "eval_view_gt_pixels": int(np.count_nonzero(ds[0]["depth"].numpy())),
            "samples_with_list_in_data_splits_nyudepthv2": len(open_dataset(
                DatasetSpec("nyu", root=str(tmp / "nyu"), split="train")))}


def check_zero_shot(tmp: Path, model: Any) -> dict[str, Any]:
    from zeroshot_trees import diode_tree, hypersim_tree, ibims_tree, simcol_tree, sunrgbd_tree

    cap = ["a room"]
    d = np.full((530, 730), 2.5, np.float32)
    sunrgbd_tree(tmp / "sunrgbd", [("kv2/kinect2data/000002", rgb_image((530, 730), 1), d)], cap)
    m = np.ones((480, 640), bool)
    m2 = m.copy()
    m2[100:150, 100:300] = False
    ibims_tree(tmp / "ibims", [("corridor_01", rgb_image((480, 640), 2), np.full((480, 640), 3.0, np.float32), m, m2)],
               cap)
    diode_tree(tmp / "diode_outdoor", [("scene_1/scan_1/a", rgb_image((768, 1024), 3),
                                        np.full((768, 1024), 20.0, np.float32))], cap)
    try:
        hypersim_tree(tmp / "hypersim", [("ai_001_001", 0, 0, rgb_image((768, 1024), 4),
                                          np.full((768, 1024), 4.0, np.float32))], cap)
    except ImportError:  # no h5py: the HyperSim entry reports what the reader says
        (tmp / "hypersim").mkdir()
    simcol_tree(tmp / "simcol", {"SyntheticColon_I/Frames_S5": [(0, rgb_image((475, 475), 5),
                                                                   np.full((475, 475), 30.0, np.float32))]})
    out = {}
    for name in ("sunrgbd", "ibims", "diode_outdoor", "hypersim", "simcol"):
        out[name] = _attempt(lambda: _evaluate(model, open_dataset(DatasetSpec(name, root=str(tmp / name),
                                                                               split="test"))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON report")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = build_model(get_preset("tiny")).eval()
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        report["kitti"] = check_kitti(tmp, model)
        report["c3vd"] = check_c3vd(tmp, model)
        report["nyu"] = check_nyu(tmp)
        report["zero_shot"] = check_zero_shot(tmp, model)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
