"""The four losses against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from tr2m_edge.errors import ConfigError
from tr2m_edge.train.losses import (LossConfig, coarse_contrast_loss, delta1, depth_classes, edge_aware_smoothness,
                                    fine_contrast_loss, fit_scale_shift, pseudo_depth, silog_loss, tpsi_loss)

LN2 = math.log(2.0)


def _t(values: list, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(*shape)


def test_silog_by_hand() -> None:
    gt = _t([1.0, 2.0, 5.0, 0.0], (1, 1, 2, 2))
    pred = _t([2.0, 4.0, 5.0, 9.0], (1, 1, 2, 2))
    mask = gt > 0
    # e = [ln2, ln2, 0]: mean(e^2) = 2 ln2^2 / 3, mean(e) = 2 ln2 / 3
    m2, m1 = 2 * LN2 ** 2 / 3, 2 * LN2 / 3
    for lam in (0.0, 0.6, 1.0):
        expected = math.sqrt(m2 - lam * m1 ** 2 + 1e-6)
        assert silog_loss(pred, gt, mask, lam).item() == pytest.approx(expected, rel=1e-5)
    # a second image without valid pixels adds 0 and halves the batch mean
    pred2, gt2 = torch.cat([pred, pred]), torch.cat([gt, torch.zeros_like(gt)])
    assert silog_loss(pred2, gt2, gt2 > 0, 0.6).item() == pytest.approx(math.sqrt(m2 - 0.6 * m1 ** 2 + 1e-6) / 2,
                                                                         rel=1e-5)


def test_least_squares_pseudo_map_by_hand() -> None:
    rel = _t([1.0, 2.0, 3.0, 4.0], (1, 1, 2, 2))
    gt = 1.0 / (2.0 * rel + 1.0)  # inverse depth exactly 2 * rel + 1
    alpha, beta = fit_scale_shift(rel, gt, torch.ones_like(gt, dtype=torch.bool))
    assert alpha.item() == pytest.approx(2.0, rel=1e-5) and beta.item() == pytest.approx(1.0, rel=1e-5)
    pseudo = pseudo_depth(rel, alpha, beta, 1e-3, 10.0)
    assert torch.allclose(pseudo, gt, rtol=1e-5)
    # constant D_r: no slope to fit -> alpha 0, beta = mean inverse depth
    flat = torch.ones_like(rel)
    a0, b0 = fit_scale_shift(flat, _t([1.0, 2.0, 4.0, 4.0], (1, 1, 2, 2)), torch.ones_like(rel, dtype=torch.bool))
    assert a0.item() == 0.0 and b0.item() == pytest.approx((1 + 0.5 + 0.25 + 0.25) / 4)
    # delta1: ratios 1, 1.2, 1.3, 2 -> 2 of 4 below 1.25
    d = delta1(_t([1.0, 1.2, 1.3, 2.0], (1, 1, 2, 2)), torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2, dtype=torch.bool))
    assert d.item() == 0.5


def test_tpsi_uses_the_pseudo_map_only_above_the_gate() -> None:
    rel = _t([1.0, 2.0, 3.0, 4.0], (1, 1, 2, 2))
    gt = 1.0 / (2.0 * rel + 1.0)
    mask = torch.tensor([[[[True, True], [True, False]]]])  # the pseudo map also covers the masked pixel
    pred = 2.0 * gt  # e = ln 2 at every pixel against the pseudo map
    loss, alpha = tpsi_loss(pred, rel, gt, mask, rho=0.5, variance_focus=0.6, min_depth=1e-3, max_depth=10.0)
    assert loss.item() == pytest.approx(math.sqrt(LN2 ** 2 * 0.4 + 1e-6), rel=1e-5)
    assert alpha.item() == pytest.approx(2.0, rel=1e-4)
    # a second image whose ground truth no affine inverse-depth map fits (delta1 = 0.25 < rho) adds 0
    gt_bad = _t([1.0, 8.0, 1.0, 8.0], (1, 1, 2, 2))
    loss2, _ = tpsi_loss(torch.cat([pred, pred]), torch.cat([rel, rel]), torch.cat([gt, gt_bad]),
                         torch.ones(2, 1, 2, 2, dtype=torch.bool), 0.9, 0.6, 1e-3, 10.0)
    assert loss2.item() == pytest.approx(math.sqrt(LN2 ** 2 * 0.4 + 1e-6) / 2, rel=1e-5)


def test_coarse_contrast_by_hand() -> None:
    emb = torch.tensor([[1.0, 0.0], [0.0, 3.0], [2.0, 0.0]])  # cosine: s01 = 0, s02 = 1, s12 = 0
    scales = torch.tensor([0.1, 0.5, 0.9])  # ranks 0, 1, 2; t = 2: pairs (0,1), (1,2) positive
    # anchor 0: -(0 - ln(e^0 + e^1)); anchor 1: -(0 - ln 2); anchor 2: -(0 - ln(e^1 + e^0))
    expected = (2 * math.log(1 + math.e) + math.log(2)) / 3
    assert coarse_contrast_loss(emb, scales, 2, 1.0).item() == pytest.approx(expected, rel=1e-6)
    # ranking follows the scales, not the batch order
    perm = torch.tensor([2, 0, 1])
    assert coarse_contrast_loss(emb[perm], scales[perm], 2, 1.0).item() == pytest.approx(expected, rel=1e-6)
    # temperature divides the similarities; t = 1 leaves no positive pair
    t2 = coarse_contrast_loss(emb, scales, 2, 0.5).item()
    assert t2 == pytest.approx((2 * math.log(1 + math.e ** 2) + math.log(2)) / 3, rel=1e-6)
    assert coarse_contrast_loss(emb, scales, 1, 1.0).item() == 0.0


def test_depth_classes_follow_the_paper_formula() -> None:
    d = torch.tensor([0.0, 1.0, 11.0, 6.0, 8.6])
    y = depth_classes(d, num_classes=10, d_min=1.0, d_max=11.0)
    # Y = round((11 - D) / 10 * 10): invalid, 10, 0, 5, round(2.4) = 2
    assert y.tolist() == [-1, 10, 0, 5, 2]


def test_fine_contrast_by_hand() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).t().reshape(1, 2, 1, 2)  # pixel embeddings e0, e1 (orthogonal)
    different = torch.tensor([0, 1]).view(1, 1, 1, 2)
    same = torch.tensor([3, 3]).view(1, 1, 1, 2)
    # different classes: each query's only positive is its own key: -(1 - ln(e + 1))
    assert fine_contrast_loss(q, q, different, 16, 1.0).item() == pytest.approx(math.log(1 + math.e) - 1, rel=1e-6)
    # same class: both keys positive: -(1/2)[(1 - ln(1+e)) + (0 - ln(1+e))]
    assert fine_contrast_loss(q, q, same, 16, 1.0).item() == pytest.approx(math.log(1 + math.e) - 0.5, rel=1e-6)
    # invalid pixels (-1) are ignored; an image with < 2 valid pixels adds 0 to the batch mean
    invalid = torch.tensor([0, -1]).view(1, 1, 1, 2)
    both = fine_contrast_loss(torch.cat([q, q]), torch.cat([q, q]), torch.cat([different, invalid]), 16, 1.0)
    assert both.item() == pytest.approx((math.log(1 + math.e) - 1) / 2, rel=1e-6)


def test_fine_contrast_samples_a_bounded_seeded_subset() -> None:
    torch.manual_seed(0)
    q, k = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6)
    classes = torch.randint(0, 3, (1, 1, 6, 6))
    a = fine_contrast_loss(q, k, classes, 5, 0.3, [torch.Generator().manual_seed(7)])
    b = fine_contrast_loss(q, k, classes, 5, 0.3, [torch.Generator().manual_seed(7)])
    assert a.item() == b.item()
    pick = torch.randperm(36, generator=torch.Generator().manual_seed(7))[:5]  # the same draw, by hand
    qs = torch.nn.functional.normalize(q.flatten(2)[0][:, pick].t(), dim=1)
    ks = torch.nn.functional.normalize(k.flatten(2)[0][:, pick].t(), dim=1)
    y = classes.flatten()[pick]
    logp = torch.log_softmax(qs @ ks.t() / 0.3, dim=1)
    pos = (y[:, None] == y[None, :]).float()
    assert a.item() == pytest.approx((-(logp * pos).sum(1) / pos.sum(1)).mean().item(), rel=1e-6)


def test_edge_aware_smoothness_by_hand() -> None:
    a = _t([1.0, 1.0, 4.0, 1.0, 1.0, 4.0], (1, 1, 2, 3))  # mean 2 -> [0.5, 0.5, 2] per row
    b = torch.full((1, 1, 2, 3), 0.3)  # constant: no cost
    image = _t([0.0, 0.0, 1.0] * 2, (1, 1, 2, 3)).expand(1, 3, 2, 3)  # an edge between columns 1 and 2
    # x: |dA| = [0, 1.5] per row, weights [1, e^-1] -> mean 1.5 e^-1 / 2; y: rows equal -> 0
    assert edge_aware_smoothness(a, b, image).item() == pytest.approx(1.5 * math.exp(-1) / 2, rel=1e-5)
    flat = torch.zeros(1, 3, 2, 3)  # no image edge: full weight
    assert edge_aware_smoothness(a, b, flat).item() == pytest.approx(1.5 / 2, rel=1e-5)


def test_loss_config_defaults_and_validation() -> None:
    cfg = LossConfig()
    assert (cfg.w_si, cfg.w_tpsi, cfg.w_soc, cfg.w_es) == (1.0, 0.5, 0.1, 0.01)
    with pytest.raises(ConfigError, match="must be >= 0"):
        LossConfig(w_es=-1)
    with pytest.raises(ConfigError, match="scale_key must be 'alpha' or 'depth'; got 'median'"):
        LossConfig(scale_key="median")
