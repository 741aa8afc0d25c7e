"""``tr2m-edge distill``: a one-ViT student learns a teacher's metric depth on unlabelled frames.

Users have the released head, not labelled data: the teacher (e.g. the paper preset with
the released weights) runs once per frame and its metric depth, A and B become the
student's targets. Steps:

1. :func:`cache_teacher`: frames (an image folder, a folder-format dataset root whose
   ``depth/`` is then used as ground truth for the report, or a video) are resized to the
   input size, split into training and held-out frames (disjoint, seeded), and the
   teacher's outputs are written once to ``OUT/teacher/`` in the folder format plus
   ``ab/`` (:class:`~tr2m_edge.train.datasets.teacher.TeacherDataset`). A second run
   with the same teacher and frames reuses it.
2. The student trains with the project's :class:`~tr2m_edge.train.trainer.Trainer`
   (progress bar, resume, torchrun) on SILog (lambda 0: absolute scale counts) against the
   teacher's depth plus L1 of log A and log B against the teacher's. The student keeps the
   teacher's relative-depth and text models, so its D_r and caption embeddings are the
   teacher's and A, B are comparable; its head reads the depth model's own tokens.
3. The report: student against teacher on the held-out frames (AbsRel, delta1), and, with
   ground truth, student and teacher against it. Written to ``OUT/distill.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from tr2m_edge.checkpoint import load_checkpoint
from tr2m_edge.config import ModelConfig, get_preset
from tr2m_edge.errors import ConfigError, DataError
from tr2m_edge.fileio import prepare_output_dir, write_json_atomic
from tr2m_edge.model.summary import KNOWN_SIZES
from tr2m_edge.preprocess import preprocess_tensor, resize_bilinear
from tr2m_edge.train.config import TrainConfig
from tr2m_edge.train.datasets import DatasetSpec, open_dataset
from tr2m_edge.train.datasets.base import IMAGE_EXTS, read_depth, read_rgb, resize_nearest
from tr2m_edge.train.evaluation import embed_captions, evaluate
from tr2m_edge.train.losses import LossConfig
from tr2m_edge.train.state import load_trained_model

CACHE_FORMAT = 1


@dataclass(frozen=True)
class DistillConfig:
    """A distillation run (the ``distill`` command's options)."""

    teacher: str  # teacher checkpoint (best.pt)
    frames: str  # image folder, folder-format dataset root (rgb/ + depth/), or a video file
    out_dir: str
    preset: str = "edge"  # the student's preset (its head; the backbone is the teacher's depth model)
    captions: str | None = None  # a file with one caption per frame, in sorted-file / video order
    text: str | None = None  # one caption for every frame
    max_frames: int = 0  # use at most this many frames (0: all)
    holdout: int = 8  # held-out frames for the report, never trained on
    steps: int = 300
    batch_size: int = 4
    lr: float = 1e-3
    w_ab: float = 1.0
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if (self.captions is None) == (self.text is None):
            raise ConfigError("Give the frames' captions: either --captions FILE (one line per frame) or --text CAPTION.")
        if self.holdout < 1 or self.steps < 1 or self.batch_size < 1 or self.max_frames < 0 or not self.lr > 0:
            raise ConfigError("distill needs --holdout >= 1, --steps >= 1, --batch-size >= 1, --max-frames >= 0 "
                              "and --lr > 0.")


# ----------------------------------------------------------------------- frames

def read_frames(source: str | Path, max_frames: int = 0) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """RGB frames (and ground-truth depth, metres, when ``source`` is a folder-format root with depth/)."""
    path = Path(source)
    frames: list[np.ndarray] = []
    truth: list[np.ndarray | None] = []
    if path.is_file():
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise DataError(f"OpenCV cannot open the video {path}.")
        while not max_frames or len(frames) < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(bgr[:, :, ::-1].copy())
            truth.append(None)
        cap.release()
    elif path.is_dir():
        rgb_dir = path / "rgb" if (path / "rgb").is_dir() else path
        files = sorted(p for p in rgb_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
        for f in files[:max_frames or None]:
            frames.append(read_rgb(f))
            rel = f.relative_to(rgb_dir).with_suffix("")
            gt = next((path / "depth" / f"{rel}{ext}" for ext in (".npy", ".png")
                       if (path / "depth" / f"{rel}{ext}").is_file()), None) if rgb_dir != path else None
            truth.append(read_depth(gt, 1000.0) if gt is not None else None)
    else:
        raise DataError(f"--images/--video {path} does not exist.")
    if not frames:
        raise DataError(f"No frames found in {path} (images: {', '.join(IMAGE_EXTS)}; or a video file).")
    return frames, truth


def _captions(cfg: DistillConfig, count: int) -> list[str]:
    if cfg.text is not None:
        return [cfg.text] * count
    path = Path(cfg.captions or "")
    if not path.is_file():
        raise DataError(f"--captions {path} does not exist.")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if len(lines) < count:
        raise DataError(f"--captions {path} has {len(lines)} lines for {count} frames; give one caption per frame.")
    return lines[:count]


# ----------------------------------------------------------------------- models

def _token_width(cfg: ModelConfig) -> int:
    spec = cfg.depth
    if spec.is_random:
        return spec.hidden_size
    if spec.source in KNOWN_SIZES:
        return KNOWN_SIZES[spec.source][0]
    from transformers import DepthAnythingConfig

    return int(DepthAnythingConfig.from_pretrained(spec.source).backbone_config.hidden_size)


def student_config(teacher: ModelConfig, preset: str) -> ModelConfig:
    """The student: ``preset``'s head on the teacher's depth model's own tokens (one ViT per frame),
    with the teacher's depth model, text encoder, input size and depth range."""
    base = get_preset(preset)
    head = dataclasses.replace(base.head, in_channels=_token_width(teacher), text_dim=teacher.head.text_dim)
    if head.in_channels % head.num_heads:
        head = dataclasses.replace(head, num_heads=next(n for n in (8, 6, 4, 2, 1) if head.in_channels % n == 0))
    return base.replace(name=f"{preset}-student", depth=teacher.depth, image=None, text=teacher.text, head=head,
                        input_size=teacher.preprocess.input_size, min_depth=teacher.min_depth,
                        max_depth=teacher.max_depth)


def cache_teacher(cfg: DistillConfig, root: Path, device: torch.device) -> dict[str, Any]:
    """Write the teacher's outputs for every frame into ``root`` (reused when already complete)."""
    ckpt_sha = hashlib.sha256(Path(cfg.teacher).read_bytes()).hexdigest()
    frames, truth = read_frames(cfg.frames, cfg.max_frames)
    if len(frames) <= cfg.holdout:
        raise DataError(f"{len(frames)} frame(s) in {cfg.frames}: need more than --holdout {cfg.holdout}.")
    captions = _captions(cfg, len(frames))
    key = {"format": CACHE_FORMAT, "teacher_sha256": ckpt_sha, "frames": str(cfg.frames), "count": len(frames),
           "holdout": cfg.holdout, "seed": cfg.seed, "captions": hashlib.sha256("\n".join(captions).encode()).hexdigest()}
    meta_path = root / "cache.json"
    if meta_path.is_file() and json.loads(meta_path.read_text()).get("key") == key:
        return json.loads(meta_path.read_text())
    model, _ = load_trained_model(cfg.teacher, device)
    h, w = model.cfg.preprocess.input_size
    order = np.random.default_rng(cfg.seed).permutation(len(frames))
    held = set(int(i) for i in order[:cfg.holdout])
    for sub in ("rgb", "depth", "ab", "captions"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    has_truth = all(t is not None for t in truth)
    if has_truth:
        (root / "truth").mkdir(exist_ok=True)
    embeddings = {c: e for c, e in zip(sorted(set(captions)), embed_captions(model, sorted(set(captions))))}
    for i, (frame, caption) in enumerate(zip(frames, captions)):
        name = f"{i:06d}"
        small = frame if frame.shape[:2] == (h, w) else (resize_bilinear(frame / 255.0, (h, w)) * 255.0 + 0.5
                                                          ).clip(0, 255).astype(np.uint8)
        image = torch.from_numpy(small).permute(2, 0, 1)[None].to(device)
        with torch.no_grad():
            out = model(preprocess_tensor(image, model.cfg.preprocess), text_emb=embeddings[caption][None].to(device),
                        frame_size=(h, w))
        cv2.imwrite(str(root / "rgb" / f"{name}.png"), small[:, :, ::-1])
        np.save(root / "depth" / f"{name}.npy", out.depth[0, 0].cpu().numpy().astype(np.float32))
        np.savez(root / "ab" / f"{name}.npz", scale=out.scale[0, 0].cpu().numpy(), shift=out.shift[0, 0].cpu().numpy())
        (root / "captions" / f"{name}.txt").write_text(caption + "\n", encoding="utf-8")
        if has_truth:
            np.save(root / "truth" / f"{name}.npy", resize_nearest(truth[i], (h, w)).astype(np.float32))
    (root / "train.txt").write_text("".join(f"{i:06d}\n" for i in range(len(frames)) if i not in held))
    (root / "test.txt").write_text("".join(f"{i:06d}\n" for i in sorted(held)))
    meta = {"key": key, "input_size": [h, w], "frames": len(frames), "held_out": sorted(held), "truth": has_truth}
    write_json_atomic(meta_path, meta)  # the commit record: written last
    return meta


def _truth_view(root: Path) -> Path:
    """A folder-format tree of the held-out frames with the ground truth as depth (for the report)."""
    view = root / "with_truth"
    for sub in ("rgb", "depth", "captions"):
        (view / sub).mkdir(parents=True, exist_ok=True)
    for name in (root / "test.txt").read_text().split():
        for sub, src, ext in (("rgb", "rgb", ".png"), ("depth", "truth", ".npy"), ("captions", "captions", ".txt")):
            link = view / sub / f"{name}{ext}"
            if not link.exists():
                os.symlink((root / src / f"{name}{ext}").resolve(), link)
    (view / "test.txt").write_text((root / "test.txt").read_text())
    return view


def _scores(result: Any) -> dict[str, float]:
    return {"abs_rel": round(result.metrics["abs_rel"], 5), "d1": round(result.metrics["d1"], 5), "images": result.count}


def distill(cfg: DistillConfig, resume: bool = True) -> dict[str, Any]:
    """Cache the teacher, train the student, report it; returns the report (also OUT/distill.json)."""
    from tr2m_edge.train.trainer import train

    out = prepare_output_dir(cfg.out_dir, "--output")
    teacher = load_checkpoint(cfg.teacher)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))
    root = out / "teacher"
    t0 = time.perf_counter()
    if int(os.environ.get("RANK", "0")) == 0:
        meta = cache_teacher(cfg, root, device)
    else:  # torchrun: rank 0 writes the cache, the others wait for its commit record
        while not (root / "cache.json").is_file():
            time.sleep(1.0)
        meta = json.loads((root / "cache.json").read_text())
    cache_s = time.perf_counter() - t0
    student = student_config(teacher.config, cfg.preset)
    spec = dict(name="teacher", root=str(root), variance_focus=0.0, max_depth=teacher.config.max_depth)
    tcfg = TrainConfig(
        model=student.to_dict(), train=(DatasetSpec(split="train", **spec),), val=DatasetSpec(split="test", **spec),
        out_dir=str(out / "student"), steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, schedule="cosine",
        warmup_steps=min(20, max(cfg.steps // 10, 1)), augment=False,
        loss=LossConfig(w_si=1.0, w_tpsi=0.0, w_soc=0.0, w_es=0.0, w_ab=cfg.w_ab),
        ckpt_every=max(cfg.steps // 4, 1), val_every=max(cfg.steps // 4, 1), seed=cfg.seed, device=cfg.device,
        progress=cfg.progress,
    )
    result = train(tcfg, resume="auto" if resume else None)
    if not result.is_main:
        return {}
    best = result.best or result.last
    model, _ = load_trained_model(best, device)
    report: dict[str, Any] = {"teacher": cfg.teacher, "student": str(best), "frames": meta["frames"],
                              "held_out": len(meta["held_out"]), "teacher_cache_s": round(cache_s, 1),
                              "student_config": student.name}
    held = open_dataset(DatasetSpec(split="test", **spec))
    report["student_vs_teacher"] = _scores(evaluate(model, held, "model", progress=False))
    if meta["truth"]:
        view = _truth_view(root)
        truth = open_dataset(DatasetSpec("folder", root=str(view), split="test"))
        teacher_model, _ = load_trained_model(cfg.teacher, device)
        report["student_vs_truth"] = _scores(evaluate(model, truth, "model", progress=False))
        report["teacher_vs_truth"] = _scores(evaluate(teacher_model, truth, "model", progress=False))
    write_json_atomic(out / "distill.json", report)
    return report
