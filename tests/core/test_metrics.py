import math

import numpy as np
import pytest

from tr2m_edge.errors import InputError
from tr2m_edge.metrics import average_metrics, compute_metrics, crop_mask


def test_metrics_hand_computed():
    gt = np.array([[1.0, 2.0], [4.0, 0.0]])  # 0 is invalid (below min_depth)
    pred = np.array([[1.0, 3.0], [2.0, 7.0]])
    m = compute_metrics(pred, gt, min_depth=1e-3, max_depth=10.0)
    # valid pairs: (1,1), (3,2), (2,4)
    assert m["d1"] == pytest.approx(1 / 3)  # ratios 1, 1.5, 2
    assert m["d2"] == pytest.approx(2 / 3)  # 1.5625 threshold
    assert m["d3"] == pytest.approx(2 / 3)  # 1.953125 threshold: ratio 2 still fails
    assert m["abs_rel"] == pytest.approx((0 + 0.5 + 0.5) / 3)
    assert m["sq_rel"] == pytest.approx((0 + 1 / 2 + 4 / 4) / 3)
    assert m["rmse"] == pytest.approx(math.sqrt((0 + 1 + 4) / 3))
    e = np.array([0.0, math.log(1.5), math.log(0.5)])
    assert m["rmse_log"] == pytest.approx(math.sqrt(np.mean(e ** 2)))
    assert m["log10"] == pytest.approx(np.mean(np.abs(e / math.log(10))))
    assert m["silog"] == pytest.approx(100 * math.sqrt(np.mean(e ** 2) - np.mean(e) ** 2))


def test_prediction_clipping_and_caps():
    gt = np.array([5.0, 20.0, 0.5])
    pred = np.array([np.inf, 3.0, np.nan])
    m = compute_metrics(pred, gt, min_depth=0.2, max_depth=10.0)
    # gt 20 is beyond the cap; inf -> 10 vs 5, NaN -> 0.2 vs 0.5
    assert m["abs_rel"] == pytest.approx((5 / 5 + 0.3 / 0.5) / 2)


def test_crops():
    eigen = crop_mask((480, 640), "eigen")
    assert eigen.sum() == (471 - 45) * (601 - 41)
    assert eigen[45, 41] and not eigen[44, 41] and not eigen[45, 601]
    garg = crop_mask((352, 1216), "garg")
    rows = np.where(garg.any(1))[0]
    cols = np.where(garg.any(0))[0]
    assert (rows[0], rows[-1] + 1) == (int(0.40810811 * 352), int(0.99189189 * 352))
    assert (cols[0], cols[-1] + 1) == (int(0.03594771 * 1216), int(0.96405229 * 1216))
    with pytest.raises(InputError, match="Unknown crop 'center'"):
        crop_mask((10, 10), "center")


def test_crop_and_extra_mask_select_pixels():
    gt = np.ones((480, 640))
    pred = np.ones((480, 640))
    pred[0, 0] = 100.0  # outside the Eigen crop: ignored
    assert compute_metrics(pred, gt, 1e-3, 10, crop="eigen")["abs_rel"] == 0.0
    assert compute_metrics(pred, gt, 1e-3, 10)["abs_rel"] > 0
    mask = np.zeros_like(gt, dtype=bool)
    assert math.isnan(compute_metrics(pred, gt, 1e-3, 10, valid_mask=mask)["d1"])


def test_shape_mismatch_and_average():
    with pytest.raises(InputError, match="differ in shape"):
        compute_metrics(np.ones((2, 2)), np.ones((3, 3)), 1e-3, 10)
    rows = [{k: v for k, v in compute_metrics(np.array([2.0]), np.array([1.0]), 1e-3, 10).items()},
            compute_metrics(np.array([1.0]), np.array([1.0]), 1e-3, 10),
            compute_metrics(np.array([1.0]), np.array([0.0]), 1e-3, 10)]  # no valid pixel: skipped
    assert average_metrics(rows)["abs_rel"] == pytest.approx(0.5)
