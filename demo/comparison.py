"""The comparison on held-out scenes: TR2M against its baselines, on the same frozen D_r.

Every method below turns the SAME stage-0 relative depth D_r of each held-out scene into
metres; only the rescaling differs:

- ``text_only``: one global (alpha, beta) of inverse depth from the caption alone (RSA-style);
- ``tr2m``: TR2M's per-pixel A, B from the image tokens and the caption (full loss);
- ``tr2m_ablation``: the same head trained without the pseudo-depth and contrast terms;
- ``tr2m_wrong_caption``: the full head given the caption of a scene of another family;
- ``oracle``: the per-image least-squares fit of D_r to the ground truth (the best any
  global rescaling of this D_r can do; it reads the answer).

Metrics per family and overall (``all``) are averaged per image, as the released
evaluation does. The held-out scenes come from their own stream; :func:`check_held_out`
proves that none of them was used for training or validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from tr2m_edge.errors import ConfigError
from tr2m_edge.metrics import average_metrics, compute_metrics
from tr2m_edge.model import TR2M
from tr2m_edge.model.head import ScaleMapHead
from tr2m_edge.preprocess import preprocess_tensor
from tr2m_edge.synthetic import SyntheticFrame, scene_seed
from tr2m_edge.train.evaluation import derange_by_group, embed_captions
from tr2m_edge.demo.baseline import TextScaleShift, global_depth
from tr2m_edge.demo.stage0 import aligned_depth

METHODS = ("text_only", "tr2m", "tr2m_ablation", "tr2m_wrong_caption", "oracle")
LABELS = {
    "text_only": "text only: global scale/shift (RSA-style)",
    "tr2m": "TR2M: per-pixel A, B (full loss)",
    "tr2m_ablation": "TR2M without pseudo-depth and contrast",
    "tr2m_wrong_caption": "TR2M, caption of another family",
    "oracle": "D_r aligned to ground truth (oracle)",
    "tr2m_bundle": "TR2M, exported bundle on ONNX Runtime",
}


def stream_seeds(seed: int, count: int) -> set[int]:
    """The per-scene seeds of the first ``count`` scenes of stream ``seed`` (what each scene is rendered from)."""
    return {scene_seed(seed, i) for i in range(count)}


def check_held_out(held_out: set[int], used: Mapping[str, set[int]]) -> None:
    """Raise ConfigError when a held-out scene was also a training or validation scene."""
    for name, seeds in used.items():
        shared = held_out & seeds
        if shared:
            raise ConfigError(
                f"{len(shared)} held-out scene(s) are also {name} scenes (scene seeds {sorted(shared)[:5]}); "
                "choose another --seed so that the held-out stream is disjoint."
            )


@dataclass
class SceneMaps:
    """One held-out scene with every map a panel shows (all (H, W) float32)."""

    frame: SyntheticFrame
    relative: np.ndarray
    scale: np.ndarray
    shift: np.ndarray
    depth: dict[str, np.ndarray] = field(default_factory=dict)  # method -> metric depth (m)


@dataclass
class Comparison:
    """Per-method metrics (method -> family/all -> metric -> value) and the panels' scenes."""

    metrics: dict[str, dict[str, dict[str, float]]]
    scenes: dict[str, SceneMaps]  # family -> its first held-out scene
    wrong_captions: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"methods": {m: {"label": LABELS[m], **v} for m, v in self.metrics.items()},
                "wrong_captions": self.wrong_captions}


def per_family(rows: Iterable[tuple[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Average per-image metrics per family and over all images (``all``)."""
    by: dict[str, list[dict[str, float]]] = {}
    for family, m in rows:
        by.setdefault(family, []).append(m)
    out = {fam: average_metrics(r) for fam, r in by.items()}
    out["all"] = average_metrics([m for r in by.values() for m in r])
    return out


@torch.no_grad()
def compare(model: TR2M, ablation: ScaleMapHead, baseline: TextScaleShift, frames: Sequence[SyntheticFrame],
            shuffle_seed: int = 0) -> Comparison:
    """Score every method of :data:`METHODS` on ``frames`` (rendered at the model's input size).

    Args:
        model: the demo model with the full-loss head (its frozen encoders give D_r and tokens).
        ablation: the head trained without the pseudo-depth and contrast terms.
        baseline: the text-only global scale/shift model.
        shuffle_seed: seed of the wrong-family caption assignment.
    """
    cfg = model.cfg
    lo, hi = cfg.min_depth, cfg.max_depth
    heads = {"tr2m": model.head, "tr2m_ablation": ablation}
    wrong = [frames[j].caption for j in derange_by_group([f.family for f in frames], shuffle_seed)]
    unique = list(dict.fromkeys([f.caption for f in frames] + wrong))
    emb = dict(zip(unique, embed_captions(model, unique)[:, None]))
    rows: dict[str, list[tuple[str, dict[str, float]]]] = {m: [] for m in METHODS}
    scenes: dict[str, SceneMaps] = {}
    for frame, other in zip(frames, wrong):
        image = torch.from_numpy(frame.rgb).permute(2, 0, 1)[None]
        rel, feats = model.encode_frame(preprocess_tensor(image, cfg.preprocess))
        preds: dict[str, np.ndarray] = {}
        outs = {}
        for name, head in heads.items():
            runner = TR2M(cfg, model.depth_encoder, None, model.text_encoder, head) if head is not model.head else model
            outs[name] = runner.head_forward(rel, feats, text_emb=emb[frame.caption], frame_size=frame.depth.shape)
            preds[name] = outs[name].depth[0, 0].numpy()
        preds["tr2m_wrong_caption"] = model.head_forward(rel, feats, text_emb=emb[other],
                                                         frame_size=frame.depth.shape).depth[0, 0].numpy()
        alpha, beta = baseline(emb[frame.caption])
        preds["text_only"] = np.clip(np.nan_to_num(global_depth(alpha, beta, rel)[0, 0].numpy(), nan=lo, posinf=hi),
                                     lo, hi)
        rel_np = rel[0, 0].numpy()
        preds["oracle"] = aligned_depth(rel_np, frame.depth, lo, hi)
        for name in METHODS:
            rows[name].append((frame.family, compute_metrics(preds[name], frame.depth, lo, hi)))
        if frame.family not in scenes:
            scenes[frame.family] = SceneMaps(frame, rel_np, outs["tr2m"].scale[0, 0].numpy(),
                                             outs["tr2m"].shift[0, 0].numpy(), preds)
    metrics = {name: per_family(r) for name, r in rows.items()}
    return Comparison(metrics, scenes, wrong)
