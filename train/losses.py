"""The four training losses of TR2M (paper, section 3; training code unreleased).

    L = w_si * L_si + w_tpsi * L_tp-si + w_soc * (L_coarse + L_fine) + w_es * L_es

with the paper's weights (1, 0.5, 0.1, 0.01). Shapes: depth-like maps are (B, 1, H, W)
in metres, ``mask`` is a (B, 1, H, W) bool of valid ground-truth pixels. Every loss is a
sum of per-image terms divided by the batch size (images without valid pixels add 0), so
averaging the gradients of N processes with B images each equals one process with N*B
images; the coarse contrast, which compares images, is computed on the gathered batch.
Choices the paper leaves open are parameters and are documented per function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from tr2m_edge.errors import ConfigError


@dataclass(frozen=True)
class LossConfig:
    """Weights and parameters of the training losses."""

    w_si: float = 1.0  # SILog against ground truth
    w_tpsi: float = 0.5  # SILog against the gated least-squares pseudo metric map
    w_soc: float = 0.1  # scale-oriented contrast (coarse + fine)
    w_es: float = 0.01  # edge-aware smoothness of A and B
    rho: float = 0.8  # delta1 gate of the pseudo map (unpublished; a parameter)
    rank_threshold: int = 2  # coarse contrast: rank distance < t is a positive pair
    coarse_temperature: float = 0.1
    scale_key: str = "alpha"  # coarse ranking: "alpha" (paper) or "depth" (median GT depth)
    fine_classes: int = 16  # |C| depth classes of the fine contrast
    fine_pixels: int = 256  # pixels sampled per image (bounds memory: P x P logits)
    fine_temperature: float = 0.2
    momentum: float = 0.99  # EMA of the key branch
    w_ab: float = 0.0  # distillation: L1 of log A and log B against a teacher's (batches carrying them)

    def __post_init__(self) -> None:
        if min(self.w_si, self.w_tpsi, self.w_soc, self.w_es, self.w_ab) < 0:
            raise ConfigError("Loss weights must be >= 0.")
        if self.rank_threshold < 1 or self.fine_classes < 1 or self.fine_pixels < 2:
            raise ConfigError("loss.rank_threshold and loss.fine_classes must be >= 1, loss.fine_pixels >= 2.")
        if min(self.coarse_temperature, self.fine_temperature) <= 0 or not 0 <= self.momentum < 1:
            raise ConfigError("Temperatures must be > 0 and loss.momentum in [0, 1).")
        if self.scale_key not in ("alpha", "depth"):
            raise ConfigError(f"loss.scale_key must be 'alpha' or 'depth'; got '{self.scale_key}'.")


# ----------------------------------------------------------------------- SILog

def silog_per_image(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, variance_focus: float = 0.85, eps: float = 1e-6
) -> torch.Tensor:
    """Per-image SILog (B,): ``sqrt(mean(e^2) - lambda * mean(e)^2 + eps)``, 0 without valid pixels."""
    m = mask.float()
    e = (torch.log(pred.clamp_min(1e-8)) - torch.log(target.clamp_min(1e-8))) * m
    n = m.flatten(1).sum(1)
    has = n > 0
    n = n.clamp_min(1.0)
    mean_e = e.flatten(1).sum(1) / n
    mean_e2 = (e * e).flatten(1).sum(1) / n
    per = torch.sqrt((mean_e2 - variance_focus * mean_e * mean_e).clamp_min(0.0) + eps)
    return torch.where(has, per, torch.zeros_like(per))


def silog_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, variance_focus: float = 0.85, eps: float = 1e-6
) -> torch.Tensor:
    """Scale-invariant log loss, per image, summed and divided by the batch size.

    Per image ``L_i = sqrt(mean(e^2) - lambda * mean(e)^2 + eps)`` with
    ``e = ln(pred) - ln(target)`` over its valid pixels; lambda is the variance focus
    (1 ignores the global scale, 0 is the log RMSE; paper: 0.6 NYU/VOID, 1.0 KITTI/C3VD).

    Args:
        pred, target: (B, 1, H, W) positive depths (target may be 0 where invalid).
        mask: (B, 1, H, W) bool, valid pixels.
    """
    return silog_per_image(pred, target, mask, variance_focus, eps).sum() / pred.shape[0]


# ----------------------------------------------------------------------- pseudo metric map

def fit_scale_shift(rel: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares (alpha, beta) per image with ``1 / target ~ alpha * rel + beta``.

    The fit is in inverse depth because D_r is disparity-like and the model's own form is
    ``1 / (A * D_r + B)``: the pseudo map is the best global (A, B) for the image. Computed
    in float64; an image with < 2 valid pixels or a constant D_r gets alpha = 0 and
    beta = mean inverse depth (beta = 0 when nothing is valid).

    Returns:
        alpha, beta: (B,) float32.
    """
    m = mask.flatten(1).double()
    x = rel.flatten(1).double()
    y = torch.where(mask.flatten(1), 1.0 / target.flatten(1).double().clamp_min(1e-12), torch.zeros_like(x))
    n = m.sum(1)
    nn_ = n.clamp_min(1.0)
    mx, my = (x * m).sum(1) / nn_, (y * m).sum(1) / nn_
    dx = (x - mx[:, None]) * m
    var = (dx * dx).sum(1)
    cov = (dx * (y - my[:, None])).sum(1)
    ok = (n >= 2) & (var > 1e-30 * (mx * mx + 1e-300))
    alpha = torch.where(ok, cov / var.clamp_min(1e-300), torch.zeros_like(var))
    beta = my - alpha * mx
    return alpha.float(), beta.float()


def pseudo_depth(rel: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor,
                 min_depth: float, max_depth: float) -> torch.Tensor:
    """The pseudo metric map ``1 / (alpha * rel + beta)`` over all pixels, clipped to the range.

    Non-positive inverse depth (beyond infinity) maps to ``max_depth``.
    """
    inv = alpha.view(-1, 1, 1, 1) * rel + beta.view(-1, 1, 1, 1)
    depth = torch.where(inv > 0, 1.0 / inv.clamp_min(1e-12), torch.full_like(inv, max_depth))
    return depth.clamp(min_depth, max_depth)


def delta1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image fraction (B,) of valid pixels with max(p/g, g/p) < 1.25 (0 without valid pixels)."""
    ratio = torch.maximum(pred / target.clamp_min(1e-12), target / pred.clamp_min(1e-12))
    good = ((ratio < 1.25) & mask).flatten(1).float().sum(1)
    return good / mask.flatten(1).float().sum(1).clamp_min(1.0)


def tpsi_loss(
    pred: torch.Tensor, rel: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, rho: float,
    variance_focus: float, min_depth: float, max_depth: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SILog of the prediction against the gated pseudo metric map (L_tp-si).

    The pseudo map (:func:`fit_scale_shift`, :func:`pseudo_depth`) covers every pixel, also
    those without ground truth; an image uses it only when the map's delta1 against ground
    truth exceeds ``rho``. Per-image terms are summed and divided by the batch size.

    Returns:
        (loss, alpha) with alpha (B,) the pseudo scales (used to rank the coarse contrast).
    """
    with torch.no_grad():
        alpha, beta = fit_scale_shift(rel, target, mask)
        pseudo = pseudo_depth(rel.float(), alpha, beta, min_depth, max_depth)
        gate = delta1(pseudo, target, mask) > rho
    per_image = silog_per_image(pred, pseudo, torch.ones_like(mask), variance_focus)
    return (per_image * gate.float()).sum() / pred.shape[0], alpha


# ----------------------------------------------------------------------- scale-oriented contrast

def coarse_contrast_loss(
    embeddings: torch.Tensor, scales: torch.Tensor, rank_threshold: int, temperature: float
) -> torch.Tensor:
    """Coarse scale-oriented contrast: InfoNCE over the batch, ranked by scale.

    Images are ranked by ``scales`` (stable sort); pairs whose rank distance is below
    ``rank_threshold`` are positives, the rest negatives. With cosine similarities
    s_ij / temperature, anchor i with positives P_i contributes
    ``-mean_{p in P_i} [s_ip - logsumexp_{k != i} s_ik]``; the loss is the mean over anchors
    that have a positive (0 when none has).

    Args:
        embeddings: (B, C) image embeddings (average-pooled fused tokens).
        scales: (B,) pseudo scales alpha (or another per-image scale).
    """
    b = embeddings.shape[0]
    if b < 2:
        return embeddings.sum() * 0.0
    z = F.normalize(embeddings.float(), dim=1)
    logits = z @ z.t() / temperature
    rank = torch.empty(b, dtype=torch.long, device=scales.device)
    rank[torch.argsort(scales.detach(), stable=True)] = torch.arange(b, device=scales.device)
    eye = torch.eye(b, dtype=torch.bool, device=embeddings.device)
    pos = ((rank[:, None] - rank[None, :]).abs() < rank_threshold) & ~eye
    log_prob = logits - torch.logsumexp(logits.masked_fill(eye, float("-inf")), dim=1, keepdim=True)
    n_pos = pos.sum(1)
    has = n_pos > 0
    if not has.any():
        return embeddings.sum() * 0.0
    per_anchor = -(log_prob * pos.float()).sum(1) / n_pos.clamp_min(1)
    return per_anchor[has].mean()


def depth_classes(depth: torch.Tensor, num_classes: int, d_min: float, d_max: float) -> torch.Tensor:
    """Y = round((d_max - D) / (d_max - d_min) * |C|), clipped to [0, |C|]; invalid (D <= 0) -> -1."""
    y = torch.round((d_max - depth) / (d_max - d_min) * num_classes).clamp(0, num_classes).long()
    return torch.where(depth > 0, y, torch.full_like(y, -1))


def fine_contrast_loss(
    query: torch.Tensor, key: torch.Tensor, classes: torch.Tensor, num_pixels: int, temperature: float,
    generators: Sequence[torch.Generator] | None = None,
) -> torch.Tensor:
    """Fine scale-oriented contrast between pixel embeddings of the same depth class.

    Per image, up to ``num_pixels`` pixels with a valid class are sampled (without
    replacement, image i drawing from ``generators[i]``): P x P logits bound the memory. Query pixels come from
    the trained head, keys from its EMA copy (no gradient). For query i, the keys of its
    own class (itself included) are positives:
    ``L_i = -mean_{j: Y_j = Y_i} log softmax_j(q_i . k_j / temperature)``.
    Per-image means are summed and divided by the batch size.

    Args:
        query, key: (B, E, h, w) pixel embeddings ("mid" features).
        classes: (B, 1, h, w) long depth classes (-1 = invalid), at the embeddings' size.
    """
    b = query.shape[0]
    total = query.sum() * 0.0
    for i in range(b):
        valid = torch.nonzero(classes[i].flatten() >= 0).squeeze(1)
        if valid.numel() < 2:
            continue
        if valid.numel() > num_pixels:
            gen = generators[i] if generators is not None else None
            pick = torch.randperm(valid.numel(), generator=gen, device="cpu")[:num_pixels]
            valid = valid[pick.to(valid.device)]
        q = F.normalize(query[i].flatten(1)[:, valid].t().float(), dim=1)
        k = F.normalize(key[i].flatten(1)[:, valid].t().float(), dim=1)
        y = classes[i].flatten()[valid]
        log_prob = torch.log_softmax(q @ k.t() / temperature, dim=1)
        pos = (y[:, None] == y[None, :]).float()
        total = total + (-(log_prob * pos).sum(1) / pos.sum(1)).mean()
    return total / b


# ----------------------------------------------------------------------- smoothness

def edge_aware_smoothness(a: torch.Tensor, b: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Edge-aware smoothness of the scale A and shift B maps.

    Each map is divided by its per-image mean (so the term does not depend on the scene's
    metric scale), then ``mean(|dx M| exp(-|dx I|)) + mean(|dy M| exp(-|dy I|))`` with
    |dI| the channel-mean absolute image gradient; the A and B terms are added.

    Args:
        a, b: (B, 1, H, W) positive maps.
        image: (B, 3, H, W) the input image (any fixed normalisation).
    """
    gx_i = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True)
    gy_i = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True)
    wx, wy = torch.exp(-gx_i), torch.exp(-gy_i)
    total = a.new_zeros(())
    for m in (a, b):
        m = m.float() / (m.float().mean(dim=(1, 2, 3), keepdim=True) + 1e-7)
        total = total + ((m[..., :, 1:] - m[..., :, :-1]).abs() * wx).mean() \
            + ((m[..., 1:, :] - m[..., :-1, :]).abs() * wy).mean()
    return total


# ----------------------------------------------------------------------- distillation

def teacher_ab_loss(a: torch.Tensor, b: torch.Tensor, a_t: torch.Tensor, b_t: torch.Tensor) -> torch.Tensor:
    """mean |log A - log A_teacher| + mean |log B - log B_teacher| (all (B, 1, h, w), positive).

    In log space because A and B are exponentials of the head's outputs and span orders of
    magnitude; the student then learns the teacher's per-pixel rescale maps, not only their
    product with D_r.
    """
    return (a.log() - a_t.log()).abs().mean() + (b.log() - b_t.log()).abs().mean()
