"""Evaluation with the released TR2M protocol.

Batch 1, caption line 0, no median scaling. Each frame, as the dataset's reader hands it
on (KITTI: image and ground truth cut to the 352x1216 KB crop; C3VD, DIODE, HyperSim,
SimCol: the image resized to 480x640 with antialiasing), is resized (bilinear,
align_corners) to the dataset's evaluation input size (released: 434x560 for NYU, VOID,
C3VD, iBims, DIODE, HyperSim and SimCol, 350x1204 for KITTI, 518x728 for SUN RGB-D; the
model's own size where none is published), predicted, resized to the ground truth's size
and clipped to the dataset's depth range. Metrics
(:func:`tr2m_edge.metrics.compute_metrics`) use the dataset's crop and valid range and are
averaged per image; each row records how many pixels were scored.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tr2m_edge.config import check_input_size
from tr2m_edge.errors import ConfigError, InputError
from tr2m_edge.fileio import check_output_file, write_json_atomic
from tr2m_edge.metrics import METRIC_NAMES, average_metrics, compute_metrics, scored_mask
from tr2m_edge.model import TR2M, postprocess_depth
from tr2m_edge.model.encoders import tokenize
from tr2m_edge.model.encoder_sources import EncoderSources
from tr2m_edge.preprocess import preprocess_tensor
from tr2m_edge.train.datasets import DatasetSpec, open_dataset
from tr2m_edge.train.datasets.base import DepthDataset
from tr2m_edge.train.state import load_trained_model

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """Averaged and per-image metrics of one evaluation run."""

    dataset: str
    count: int  # images evaluated (with at least one valid pixel)
    metrics: dict[str, float]
    per_image: list[dict[str, Any]] = field(default_factory=list)
    input_size: tuple[int, int] | None = None
    depth_range: tuple[float, float] = (0.0, 0.0)
    crop: str = "none"
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset, "count": self.count, "metrics": self.metrics,
            "input_size": list(self.input_size) if self.input_size else None,
            "depth_range": list(self.depth_range), "crop": self.crop, "seconds": round(self.seconds, 3),
            "per_image": self.per_image,
        }


def derange_by_group(groups: list[str], seed: int = 0) -> list[int]:
    """A permutation p where sample i takes the caption of p[i], from another group when possible.

    Used for the text ablation ("shuffle captions across scene families"): every sample
    gets a caption that describes a different kind of scene.
    """
    rng = np.random.default_rng(seed)
    n = len(groups)
    out = []
    for i in range(n):
        others = [j for j in range(n) if groups[j] != groups[i]] or [j for j in range(n) if j != i] or [i]
        out.append(int(others[int(rng.integers(len(others)))]))
    return out


@torch.no_grad()
def embed_captions(model: TR2M, captions: list[str]) -> torch.Tensor:
    """Text embeddings (N, text_dim), each caption encoded on its own.

    One tokenizer call for all captions, then one text-encoder call per caption, so an
    embedding never depends on which other captions shared its batch (exact resume).
    """
    if not captions:
        return torch.zeros(0, model.cfg.head.text_dim)
    tokens = tokenize(list(captions))
    return torch.cat([model.encode_text(tokens[i:i + 1]) for i in range(len(captions))])


def resolve_input_size(choice: str | tuple[int, int] | None, dataset: DepthDataset, model: TR2M) -> tuple[int, int]:
    """'official' (the dataset's released size, else the model's), 'model', or an explicit (h, w)."""
    if choice is None or choice == "official":
        size = dataset.protocol.input_size or model.cfg.preprocess.input_size
    elif choice == "model":
        size = model.cfg.preprocess.input_size
    elif isinstance(choice, str):
        raise ConfigError(f"input size must be 'official', 'model' or HxW; got '{choice}'.")
    else:
        size = choice
    return check_input_size(tuple(size))


@torch.no_grad()
def predict_depth(
    model: TR2M, image: torch.Tensor, text_emb: torch.Tensor, input_size: tuple[int, int],
    min_depth: float, max_depth: float, out_size: tuple[int, int] | None = None, normalize: bool = True,
) -> np.ndarray:
    """Metric depth (h, w) float32 of one frame, the released evaluation way.

    Args:
        image: (3, H, W) float RGB in [0, 1], the frame as the reader hands it on.
        text_emb: (1, text_dim) caption embedding.
        out_size: (h, w) of the ground truth the prediction is resized to; None: the frame's.
        normalize: ImageNet mean/std normalisation (off for iBims, as released).
    """
    pre = dataclasses.replace(model.cfg.preprocess, input_size=input_size)
    if not normalize:
        pre = dataclasses.replace(pre, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    pix = preprocess_tensor(image[None].to(text_emb.device), pre)
    rel, feats = model.encode_frame(pix)
    out = model.head_forward(rel, feats, text_emb=text_emb)
    size = tuple(out_size) if out_size is not None else tuple(image.shape[-2:])
    return postprocess_depth(out.raw_depth, size, min_depth, max_depth)[0, 0].cpu().numpy().astype(np.float32)


@torch.no_grad()
def evaluate(
    model: TR2M,
    dataset: DepthDataset,
    input_size: str | tuple[int, int] | None = "official",
    limit: int | None = None,
    shuffle_captions: int | None = None,
    progress: bool = False,
    keep_predictions: bool = False,
) -> EvalResult:
    """Evaluate ``model`` on ``dataset`` with its protocol.

    Args:
        input_size: 'official', 'model' or (h, w).
        limit: evaluate only the first ``limit`` images.
        shuffle_captions: seed of a caption shuffle across groups (text ablation); None: off.
        keep_predictions: store each prediction under ``per_image[i]["pred"]`` (numpy).
    """
    if len(dataset) == 0:
        raise InputError(f"Dataset {dataset.name} has no samples to evaluate.")
    size = resolve_input_size(input_size, dataset, model)
    proto = dataset.protocol
    n = len(dataset) if limit is None else max(0, min(int(limit), len(dataset)))
    captions = [dataset.caption_lines(i)[0] for i in range(n)]
    if shuffle_captions is not None:
        perm = derange_by_group([dataset.group(i) for i in range(n)], shuffle_captions)
        captions = [captions[p] for p in perm]
    unique = list(dict.fromkeys(captions))
    emb_cache = dict(zip(unique, embed_captions(model, unique)[:, None]))
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    bar = Progress(TextColumn("eval {task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   disable=not progress, transient=True)
    with bar:
        task = bar.add_task(dataset.name, total=n)
        for i in range(n):
            sample = dataset[i]
            caption = captions[i]
            gt = sample["depth"][0].numpy()
            pred = predict_depth(model, sample["image"], emb_cache[caption], size, proto.min_depth,
                                 proto.max_depth, gt.shape, proto.normalize)
            pixels = int(scored_mask(gt, proto.min_depth, proto.max_depth, proto.crop).sum())
            row: dict[str, Any] = {"index": i, "caption": caption, "pixels": pixels,
                                   **compute_metrics(pred, gt, proto.min_depth, proto.max_depth, proto.crop)}
            if keep_predictions:
                row["pred"] = pred
            rows.append(row)
            bar.advance(task)
    metrics = average_metrics([{k: r[k] for k in METRIC_NAMES} for r in rows])
    count = sum(1 for r in rows if not np.isnan(r["abs_rel"]))
    return EvalResult(dataset.name, count, metrics, rows, size, (proto.min_depth, proto.max_depth), proto.crop,
                      time.perf_counter() - start)


def evaluate_checkpoint(
    ckpt: str | Path,
    spec: DatasetSpec,
    input_size: str | tuple[int, int] | None = "official",
    limit: int | None = None,
    output: str | Path | None = None,
    shuffle_captions: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    sources: EncoderSources | None = None,
) -> EvalResult:
    """Load a checkpoint, evaluate it on ``spec`` and optionally write the result as JSON.

    Bad arguments (a negative ``limit``, an unwritable ``output``) fail before the model loads.
    ``sources``: frozen encoders to load instead of the checkpoint config's.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1 (or left out for every image); got {limit}.")
    if output is not None:
        check_output_file(output, "--output")
    model, _ = load_trained_model(ckpt, device, sources)
    dataset = open_dataset(spec, size=model.cfg.preprocess.input_size)
    result = evaluate(model, dataset, input_size, limit, shuffle_captions, progress)
    if output is not None:
        data = result.to_dict()
        data["checkpoint"] = str(ckpt)
        data["shuffle_captions"] = shuffle_captions
        write_json_atomic(output, data)
    return result
