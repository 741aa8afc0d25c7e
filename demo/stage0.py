"""Stage 0 of the demo: a tiny Depth Anything that has learnt relative depth.

TR2M rescales the relative depth of a frozen, well-trained model. The ``tiny`` preset's
Depth Anything is random (no weights can be downloaded here), so its "relative depth" is
a blob that follows nothing. Stage 0 trains the same model class
(``DepthAnythingForDepthEstimation``, the tiny preset's sizes, built and initialised as
:func:`tr2m_edge.model.encoders.build_depth_encoder` builds it) on the procedural
synthetic scenes with Depth Anything's / MiDaS' objective, then freezes it:

- targets are ground-truth disparity ``1 / depth``;
- prediction and target are each aligned per image by their median and mean absolute
  deviation (scale-and-shift invariant), then compared with L1 (:func:`ssi_loss`);
- plus MiDaS' multi-scale gradient-matching term on the aligned difference.

Training is deterministic on the CPU (fixed thread count, seeded data order and flips,
``torch.use_deterministic_algorithms``), so :func:`train_stage0` regenerates the shipped
weights (``demo/weights/stage0``: a ``save_pretrained`` folder, safetensors) bit for bit
on the same CPU type and torch build:  ``tr2m-edge demo-stage0 --out demo/weights/stage0``.
The output is rescaled after training (last convolution, exactly proportional through
the final ReLU) so that D_r has a mean of :data:`TARGET_MEAN` on the training scenes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from tr2m_edge.config import EncoderSpec, PreprocessConfig, get_preset
from tr2m_edge.errors import ConfigError, ModelLoadError
from tr2m_edge.metrics import average_metrics, compute_metrics
from tr2m_edge.model.encoders import DepthEncoder, build_depth_encoder
from tr2m_edge.preprocess import preprocess_tensor
from tr2m_edge.synthetic import SyntheticFrame, iter_scenes
from tr2m_edge.train.losses import fit_scale_shift, pseudo_depth

log = logging.getLogger(__name__)
STAGE0_DIR = Path(__file__).resolve().parent / "weights" / "stage0"  # shipped as package data
RECORD = "stage0.json"  # training record written next to the weights
WEIGHTS = "model.safetensors"
TARGET_MEAN = 5.0  # mean D_r on the training scenes after training (the random DA's calibration target)


@dataclass(frozen=True)
class Stage0Config:
    """How stage 0 is trained; the model sizes are the ``tiny`` preset's depth encoder."""

    scenes: int = 1200  # training scenes, rendered once and kept in memory
    scene_seed: int = 50_000  # their stream seed (the TR2M stages use other streams)
    val_scenes: int = 48  # validation scenes (stream scene_seed + 1): the only ones used for choices
    size: tuple[int, int] = (140, 182)  # (H, W) rendered and network input size
    steps: int = 2400
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_weight: float = 0.5  # weight of the gradient-matching term (MiDaS: 0.5)
    grad_scales: int = 4
    flip: bool = True  # horizontal flips (p = 0.5)
    seed: int = 0  # data order and flips
    threads: int = 1  # torch CPU threads: part of what makes the bytes reproducible (1: robust on a loaded box)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        if min(self.scenes, self.steps, self.batch_size, self.threads) < 1 or self.lr <= 0:
            raise ConfigError("stage 0 needs scenes, steps, batch_size, threads >= 1 and lr > 0.")

    def depth_spec(self) -> EncoderSpec:
        """The random Depth Anything stage 0 starts from: the tiny preset's, unchanged."""
        return get_preset("tiny").depth

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


# --------------------------------------------------------------------------- the objective

def _align(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image ``(x - median) / mean|x - median|`` over the valid pixels (B, N)."""
    med = torch.where(mask, x, torch.full_like(x, float("nan"))).nanmedian(dim=1, keepdim=True).values
    n = mask.sum(1, keepdim=True).clamp_min(1)
    mad = ((x - med).abs() * mask).sum(1, keepdim=True) / n
    return (x - med) / mad.clamp_min(1e-6)


def ssi_loss(pred: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor, grad_weight: float = 0.5,
             grad_scales: int = 4) -> torch.Tensor:
    """Scale-and-shift-invariant disparity loss (MiDaS, Depth Anything), mean over the batch.

    Args:
        pred: (B, 1, H, W) predicted relative disparity.
        depth: (B, 1, H, W) ground-truth depth in metres (targets are ``1 / depth``).
        mask: (B, 1, H, W) bool, valid pixels.
        grad_weight: weight of the multi-scale gradient-matching term (0: off).
        grad_scales: scales of that term (each halves the resolution).

    Returns:
        ``mean|a(pred) - a(1/depth)| + grad_weight * sum_k G_k`` where ``a`` aligns an image
        by its median and mean absolute deviation and ``G_k`` is the mean absolute x/y
        gradient of the aligned difference at scale k.
    """
    b = pred.shape[0]
    m = mask.reshape(b, -1)
    disp = torch.where(mask, 1.0 / depth.clamp_min(1e-6), torch.zeros_like(depth))
    p = _align(pred.reshape(b, -1).float(), m)
    t = _align(disp.reshape(b, -1).float(), m)
    mf = m.float()
    loss = ((p - t).abs() * mf).sum() / mf.sum().clamp_min(1.0)
    if grad_weight > 0:
        diff = ((p - t) * mf).reshape(pred.shape)
        mk = mask.float()
        for k in range(grad_scales):
            step = 2 ** k
            d, mm = diff[..., ::step, ::step], mk[..., ::step, ::step]
            gx = (d[..., :, 1:] - d[..., :, :-1]).abs() * mm[..., :, 1:] * mm[..., :, :-1]
            gy = (d[..., 1:, :] - d[..., :-1, :]).abs() * mm[..., 1:, :] * mm[..., :-1, :]
            loss = loss + grad_weight * (gx.sum() + gy.sum()) / mm.sum().clamp_min(1.0)
    return loss


# --------------------------------------------------------------------------- quality

@torch.no_grad()
def relative_depth(encoder: DepthEncoder, frames: Sequence[SyntheticFrame], size: tuple[int, int],
                   chunk: int = 16) -> list[np.ndarray]:
    """D_r (h, w) float32 of each frame at network input ``size``."""
    pre = PreprocessConfig(input_size=size)
    out: list[np.ndarray] = []
    for i in range(0, len(frames), chunk):
        images = torch.stack([torch.from_numpy(f.rgb).permute(2, 0, 1) for f in frames[i:i + chunk]])
        rel, _ = encoder(preprocess_tensor(images, pre))
        out += [r[0].numpy().astype(np.float32) for r in rel]
    return out


def aligned_depth(rel: np.ndarray, gt: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """The per-image least-squares fit of ``1/gt ~ alpha * rel + beta`` as depth (H, W), clipped (the oracle)."""
    r = torch.from_numpy(rel)[None, None].double()
    g = torch.from_numpy(gt)[None, None].double()
    mask = (g > min_depth) & (g < max_depth)
    alpha, beta = fit_scale_shift(r, g, mask)
    return pseudo_depth(r.float(), alpha, beta, min_depth, max_depth)[0, 0].numpy()


def alignment_quality(rels: Sequence[np.ndarray], frames: Sequence[SyntheticFrame], min_depth: float,
                      max_depth: float) -> dict[str, dict[str, float]]:
    """Metrics per family and overall (``all``) of D_r after per-image least-squares alignment."""
    rows: dict[str, list[dict[str, float]]] = {}
    for rel, f in zip(rels, frames):
        pred = aligned_depth(rel, f.depth, min_depth, max_depth)
        rows.setdefault(f.family, []).append(compute_metrics(pred, f.depth, min_depth, max_depth))
    out = {fam: average_metrics(r) for fam, r in rows.items()}
    out["all"] = average_metrics([m for r in rows.values() for m in r])
    return out


# --------------------------------------------------------------------------- training

@contextlib.contextmanager
def deterministic_cpu(threads: int) -> Iterator[None]:
    """Fixed torch thread count and deterministic algorithms, restored afterwards."""
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(int(threads))
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)


def warmup_cosine(lr: float, step: int, warmup_steps: int, steps: int) -> float:
    """Learning rate of step ``step`` (0-based): linear warmup, then cosine to 0 at ``steps`` (the demo's stages)."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    span = max(1, steps - warmup_steps)
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))


def _batches(cfg: Stage0Config, n: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(indices, flip flags) per step: epochs of seeded permutations."""
    rng = np.random.default_rng([cfg.seed, 0x57A6E0])
    order: list[int] = []
    for _ in range(cfg.steps):
        while len(order) < cfg.batch_size:
            order += rng.permutation(n).tolist()
        idx, order = np.asarray(order[:cfg.batch_size]), order[cfg.batch_size:]
        flips = rng.random(cfg.batch_size) < 0.5 if cfg.flip else np.zeros(cfg.batch_size, bool)
        yield idx, flips


def _stack(frames: Sequence[SyntheticFrame]) -> tuple[torch.Tensor, torch.Tensor]:
    rgb = torch.from_numpy(np.stack([f.rgb for f in frames])).permute(0, 3, 1, 2).contiguous()
    depth = torch.from_numpy(np.stack([f.depth for f in frames]))[:, None]
    return rgb, depth


@torch.no_grad()
def _rescale_output(encoder: DepthEncoder, images: torch.Tensor, pre: PreprocessConfig) -> float:
    """Scale the last convolution so that mean D_r over ``images`` is TARGET_MEAN; returns the factor."""
    rel, _ = encoder(preprocess_tensor(images, pre))
    mean = float(rel.mean())
    if not mean > 0:
        raise ConfigError("stage 0 collapsed: its relative depth is zero everywhere; train with a lower lr.")
    k = TARGET_MEAN / mean
    last = encoder.model.head.conv3
    last.weight.mul_(k)
    if last.bias is not None:
        last.bias.mul_(k)
    return k


def train_stage0(cfg: Stage0Config, out_dir: str | Path,
                 on_step: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train stage 0 as ``cfg`` says and save it to ``out_dir`` (``save_pretrained``, safetensors).

    Also writes ``out_dir/stage0.json``: the config, the weights' sha256, the final
    training loss, the validation quality (AbsRel after alignment) and the time taken.

    Args:
        on_step: called with (step, loss) after every step (progress display).

    Returns:
        The record written to ``stage0.json``.
    """
    out = Path(out_dir)
    t0 = time.perf_counter()
    pre = PreprocessConfig(input_size=cfg.size)
    with deterministic_cpu(cfg.threads):
        frames = list(iter_scenes(cfg.scenes, size=cfg.size, seed=cfg.scene_seed))
        rgb, depth = _stack(frames)
        encoder = build_depth_encoder(cfg.depth_spec())
        encoder.model.train()
        for p in encoder.parameters():
            p.requires_grad_(True)
        params = [p for p in encoder.parameters()]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        losses: list[float] = []
        for step, (idx, flips) in enumerate(_batches(cfg, len(frames))):
            images, gt = rgb[idx].float() / 255.0, depth[idx]
            fl = torch.from_numpy(flips)
            images = torch.where(fl.view(-1, 1, 1, 1), images.flip(-1), images)
            gt = torch.where(fl.view(-1, 1, 1, 1), gt.flip(-1), gt)
            for group in opt.param_groups:
                group["lr"] = warmup_cosine(cfg.lr, step, cfg.warmup_steps, cfg.steps)
            rel, _ = encoder(preprocess_tensor(images, pre))
            loss = ssi_loss(rel, gt, gt > 0, cfg.grad_weight, cfg.grad_scales)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(step + 1, losses[-1])
        encoder.model.eval()
        for p in encoder.parameters():
            p.requires_grad_(False)
        factor = _rescale_output(encoder, rgb[:64], pre)
        val = list(iter_scenes(cfg.val_scenes, size=cfg.size, seed=cfg.scene_seed + 1)) if cfg.val_scenes else []
        quality = alignment_quality(relative_depth(encoder, val, cfg.size), val, 1e-3, 80.0) if val else {}
    out.mkdir(parents=True, exist_ok=True)
    encoder.model.save_pretrained(out, safe_serialization=True)
    record = {
        "format": "tr2m-edge/demo-stage0", "config": cfg.to_dict(), "depth_spec": dataclasses.asdict(cfg.depth_spec()),
        "sha256": hashlib.sha256((out / WEIGHTS).read_bytes()).hexdigest(),
        "final_loss": float(np.mean(losses[-50:])), "output_factor": factor,
        "val_aligned": quality, "torch": torch.__version__, "seconds": round(time.perf_counter() - t0, 1),
    }
    (out / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record


# --------------------------------------------------------------------------- loading

def stage0_record(folder: str | Path = STAGE0_DIR) -> dict[str, Any]:
    """The training record of a stage-0 folder; ModelLoadError naming the fix when absent."""
    path = Path(folder) / RECORD
    if not path.is_file() or not (Path(folder) / WEIGHTS).is_file():
        raise ModelLoadError(
            f"No stage-0 weights in {folder} (need {WEIGHTS} and {RECORD}). "
            f"Regenerate them with `tr2m-edge demo-stage0 --out {folder}`."
        )
    return json.loads(path.read_text())


def check_stage0(folder: str | Path = STAGE0_DIR) -> str:
    """Verify the weights against the sha256 in their record; returns the hash."""
    record = stage0_record(folder)
    digest = hashlib.sha256((Path(folder) / WEIGHTS).read_bytes()).hexdigest()
    if digest != record["sha256"]:
        raise ModelLoadError(
            f"{Path(folder) / WEIGHTS} does not match the sha256 in {RECORD} (modified or truncated). "
            f"Restore it from git or regenerate it with `tr2m-edge demo-stage0 --out {folder}`."
        )
    return digest


def stage0_spec(folder: str | Path = STAGE0_DIR) -> EncoderSpec:
    """The tiny preset's depth spec pointing at the stage-0 weights (a local directory)."""
    return dataclasses.replace(get_preset("tiny").depth, source=str(Path(folder).resolve()))
