"""The text-only baseline: a global scale and shift of inverse depth from the caption alone.

The approach TR2M improves on (RSA, NeurIPS 2024): a caption's text embedding predicts one
(alpha, beta) per image, and metric depth is ``1 / (alpha * D_r + beta)`` with the same
frozen D_r TR2M rescales. TR2M instead predicts per-pixel maps A, B from the image tokens
and the caption. Trained here on the same scenes, with the same SILog term as TR2M's
L_si, the same step count, optimiser and schedule; best weights by validation AbsRel.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from tr2m_edge.demo.stage0 import warmup_cosine
from tr2m_edge.errors import CheckpointError, ConfigError
from tr2m_edge.metrics import average_metrics, compute_metrics
from tr2m_edge.model import TR2M
from tr2m_edge.preprocess import preprocess_tensor
from tr2m_edge.train.datasets import open_dataset
from tr2m_edge.train.evaluation import embed_captions
from tr2m_edge.train.losses import silog_loss

FORMAT = "tr2m-edge/demo-text-baseline"


class TextScaleShift(nn.Module):
    """Text embedding (B, T) -> (alpha, beta) (B,), each ``coef * exp(mlp)`` (positive, like A and B)."""

    def __init__(self, text_dim: int, hidden: int = 64, coef: float = 0.01) -> None:
        super().__init__()
        self.coef = coef
        self.mlp = nn.Sequential(nn.Linear(text_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, 2))

    def forward(self, text_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.mlp(text_emb.float())
        return self.coef * torch.exp(out[:, 0]), self.coef * torch.exp(out[:, 1])


def global_depth(alpha: torch.Tensor, beta: torch.Tensor, rel: torch.Tensor) -> torch.Tensor:
    """``1 / (alpha * D_r + beta)`` for (B,) alpha, beta and (B, 1, H, W) D_r (unclipped)."""
    return 1.0 / (alpha.view(-1, 1, 1, 1) * rel.float() + beta.view(-1, 1, 1, 1))


@dataclass(frozen=True)
class BaselineConfig:
    """Training of the text-only baseline (the TR2M heads' steps, batch, optimiser and schedule)."""

    steps: int = 600
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 30
    hidden: int = 64
    seed: int = 0
    val_every: int = 150

    def __post_init__(self) -> None:
        if min(self.steps, self.batch_size, self.hidden, self.val_every) < 1 or self.lr <= 0:
            raise ConfigError("The text baseline needs steps, batch_size, hidden, val_every >= 1 and lr > 0.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@torch.no_grad()
def encode_scenes(model: TR2M, dataset: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(D_r (N,1,h,w), ground truth (N,1,h,w), caption embeddings (N,T)) of a dataset's evaluation view."""
    rels, gts, captions = [], [], []
    for start in range(0, len(dataset), 16):
        samples = [dataset[i] for i in range(start, min(start + 16, len(dataset)))]
        images = torch.stack([s["image"] for s in samples])
        rel, _ = model.encode_frame(preprocess_tensor(images, model.cfg.preprocess))
        rels.append(rel.float())
        gts.append(torch.stack([s["depth"] for s in samples]))
        captions += [s["caption"] for s in samples]
    return torch.cat(rels), torch.cat(gts), embed_captions(model, captions)


@torch.no_grad()
def score(net: TextScaleShift, rel: torch.Tensor, gt: torch.Tensor, text: torch.Tensor, min_depth: float,
          max_depth: float) -> dict[str, float]:
    """Mean per-image metrics of the baseline on encoded scenes."""
    alpha, beta = net(text)
    pred = global_depth(alpha, beta, rel).clamp(min_depth, max_depth)
    pred = torch.nan_to_num(pred, nan=min_depth, posinf=max_depth)
    return average_metrics(compute_metrics(p[0].numpy(), g[0].numpy(), min_depth, max_depth) for p, g in zip(pred, gt))


def train_baseline(model: TR2M, train_specs: Sequence[Any], val_spec: Any, cfg: BaselineConfig,
                   out: str | Path) -> dict[str, Any]:
    """Train the text-only baseline on the scenes of ``train_specs`` (DatasetSpecs); save it to ``out``.

    ``model`` gives the frozen D_r and caption embeddings (the TR2M model's own encoders).
    Returns the record stored with the weights (config, validation metrics, step of the best).
    """
    size = model.cfg.preprocess.input_size
    data = [encode_scenes(model, open_dataset(spec, size)) for spec in train_specs]
    rel, gt, text = (torch.cat(parts) for parts in zip(*data))
    val_set = open_dataset(val_spec, size)
    return fit_baseline((rel, gt, text), encode_scenes(model, val_set), val_set.protocol, cfg, out)


Encoded = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (D_r, ground truth, caption features), as encode_scenes


def fit_baseline(train: Encoded, val: Encoded, proto: Any, cfg: BaselineConfig, out: str | Path) -> dict[str, Any]:
    """Fit the baseline on encoded scenes (any caption features of width T); best by validation AbsRel.

    ``proto``: the evaluation protocol (depth range, SILog variance focus). Saved to ``out``;
    returns the record stored with the weights.
    """
    rel, gt, text = train
    v_rel, v_gt, v_text = val
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = TextScaleShift(text.shape[1], cfg.hidden)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng([cfg.seed, 0xBA5E])
    order: list[int] = []
    best: dict[str, Any] = {"abs_rel": float("inf")}
    history = []
    for step in range(cfg.steps):
        while len(order) < cfg.batch_size:
            order += rng.permutation(len(rel)).tolist()
        idx, order = order[:cfg.batch_size], order[cfg.batch_size:]
        for group in opt.param_groups:
            group["lr"] = warmup_cosine(cfg.lr, step, cfg.warmup_steps, cfg.steps)
        alpha, beta = net(text[idx])
        mask = (gt[idx] > proto.min_depth) & (gt[idx] < proto.max_depth)
        loss = silog_loss(global_depth(alpha, beta, rel[idx]), gt[idx], mask, proto.variance_focus)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if (step + 1) % cfg.val_every == 0 or step + 1 == cfg.steps:
            metrics = score(net, v_rel, v_gt, v_text, proto.min_depth, proto.max_depth)
            history.append({"step": step + 1, "val": metrics})
            if metrics["abs_rel"] < best["abs_rel"]:
                best = {"abs_rel": metrics["abs_rel"], "step": step + 1,
                        "state": {k: v.detach().clone() for k, v in net.state_dict().items()}}
    record = {"format": FORMAT, "config": cfg.to_dict(), "text_dim": int(text.shape[1]),
              "best_step": best["step"], "val": history}
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": best["state"], "record": json.dumps(record)}, path)
    return record


def load_baseline(path: str | Path) -> TextScaleShift:
    """The trained baseline saved by :func:`train_baseline`, in eval mode."""
    p = Path(path)
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
        record = json.loads(data["record"])
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"Cannot read the text baseline {p}: {exc}. Delete it and rerun the demo.") from None
    if record.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a text-baseline file (format {record.get('format')!r}).")
    net = TextScaleShift(int(record["text_dim"]), int(record["config"]["hidden"]))
    net.load_state_dict(data["state_dict"])
    return net.eval()
