"""Training and evaluation commands (``train``, ``eval``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tr2m_edge.cli.app import app
from tr2m_edge.cli.encoders import DEPTH_MODEL, IMAGE_MODEL, OFFLINE, TEXT_MODEL, encoder_sources

console = Console(highlight=False)


@app.command("train")
def train_cmd(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Train config JSON (start from --write-config)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder for last.pt, best.pt and log.jsonl (sets out_dir)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total optimiser steps (sets steps; 0 = epochs)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch size per process (sets batch_size)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (sets lr)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (sets device)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="A last.pt to continue from, or 'auto' for OUT/last.pt."),
    overrides: list[str] = typer.Option([], "--set", help="Override any config field: dotted.key=value (JSON value)."),
    write_config: Optional[Path] = typer.Option(
        None, "--write-config", help="Write the effective config (defaults + file + overrides) to this file and exit."
    ),
    default_caption: Optional[str] = typer.Option(
        None, "--default-caption", help="Caption for images without a caption file (every dataset without its own)."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar (logs still go to log.jsonl)."),
    depth_model: Optional[str] = DEPTH_MODEL,
    image_model: Optional[str] = IMAGE_MODEL,
    text_model: Optional[str] = TEXT_MODEL,
    offline: bool = OFFLINE,
) -> None:
    """Train the TR2M head (one process, or many under torchrun) from a JSON config."""
    import dataclasses
    import json

    from tr2m_edge.fileio import check_output_file, write_text_atomic
    from tr2m_edge.model.encoder_sources import with_encoder_sources
    from tr2m_edge.train.config import load_train_config, with_default_caption
    from tr2m_edge.train.trainer import train

    sets = list(overrides)
    for key, value in (("out_dir", out), ("steps", steps), ("batch_size", batch_size), ("lr", lr), ("device", device)):
        if value is not None:
            sets.append(f"{key}={json.dumps(str(value) if isinstance(value, Path) else value)}")
    if no_progress:
        sets.append("progress=false")
    cfg = load_train_config(config, sets)
    if default_caption:
        cfg = with_default_caption(cfg, default_caption)
    sources = encoder_sources(depth_model, image_model, text_model, offline)
    if sources:  # the checkpoints' config records where the encoders came from
        cfg = dataclasses.replace(cfg, model=with_encoder_sources(cfg.model_config(), sources).to_dict())
    if write_config is not None:
        write_text_atomic(check_output_file(write_config, "--write-config"), cfg.to_json() + "\n")
        console.print(f"Wrote the train config to {write_config}")
        return
    result = train(cfg, resume=resume)
    if result.is_main:
        best = f"{result.best} ({cfg.val_metric if cfg.val else 'train loss'} {result.best_metric:.4f})" \
            if result.best is not None and result.best_metric is not None else "none"
        console.print(f"Trained {result.step} steps -> {result.last}; best: {best}; log: {result.out_dir / 'log.jsonl'}")


@app.command("eval")
def eval_cmd(
    ckpt: Path = typer.Option(..., "--ckpt", help="Checkpoint to evaluate (best.pt or last.pt)."),
    dataset: str = typer.Option(..., "--dataset", help="nyu, kitti, void, c3vd, folder, synthetic, or a zero-shot set: "
                                "sunrgbd, ibims, diode_outdoor, hypersim, simcol."),
    root: Optional[Path] = typer.Option(None, "--root", help="Dataset folder in its public layout (not for synthetic)."),
    split: str = typer.Option("test", "--split", help="Split to evaluate (test, val, train, ...)."),
    captions: Optional[Path] = typer.Option(
        None, "--captions", help="Caption folder (<image path>.txt) or one file with a line per sample; default ROOT/text/<dataset>/<split>."
    ),
    default_caption: Optional[str] = typer.Option(None, "--default-caption", help="Caption for images without a caption file."),
    input_size: str = typer.Option("official", "--input-size", help="official (the dataset's released size), model, or HxW."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate only the first N images."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="JSON result file (default: next to the checkpoint)."),
    shuffle_captions: Optional[int] = typer.Option(
        None, "--shuffle-captions", help="Text ablation: give each image another scene kind's caption (value: seed)."
    ),
    min_depth: Optional[float] = typer.Option(None, "--min-depth", help="Valid ground truth above this (default: the dataset's)."),
    max_depth: Optional[float] = typer.Option(None, "--max-depth", help="Cap and valid range top (default: the dataset's)."),
    count: int = typer.Option(60, "--count", help="synthetic: number of scenes."),
    seed: int = typer.Option(1000, "--seed", help="synthetic: scene seed (training used 0 by default)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    depth_model: Optional[str] = DEPTH_MODEL,
    image_model: Optional[str] = IMAGE_MODEL,
    text_model: Optional[str] = TEXT_MODEL,
    offline: bool = OFFLINE,
) -> None:
    """Evaluate a checkpoint with the released protocol (crops, depth caps, input sizes) and write JSON."""
    from tr2m_edge.config import parse_size
    from tr2m_edge.metrics import LOWER_IS_BETTER, METRIC_NAMES
    from tr2m_edge.train.datasets import DatasetSpec
    from tr2m_edge.train.evaluation import evaluate_checkpoint

    size = input_size if input_size in ("official", "model") else parse_size(input_size)
    spec = DatasetSpec(dataset, root=str(root) if root else None, split=split,
                       captions=str(captions) if captions else None, default_caption=default_caption,
                       count=count, seed=seed, min_depth=min_depth, max_depth=max_depth)
    output = output or ckpt.parent / f"eval_{dataset}_{split}.json"
    result = evaluate_checkpoint(ckpt, spec, size, limit, output, shuffle_captions, device,
                                 sources=encoder_sources(depth_model, image_model, text_model, offline))
    h, w = result.input_size or (0, 0)
    table = Table(title=f"{dataset} ({split}): {result.count} images",
                  caption=f"input {h}x{w}, depth {result.depth_range[0]:g}-{result.depth_range[1]:g}, crop {result.crop}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("better")
    for name in METRIC_NAMES:
        table.add_row(name, f"{result.metrics[name]:.4f}", "lower" if name in LOWER_IS_BETTER else "higher")
    console.print(table)
    console.print(f"Wrote {output}")


@app.command("distill")
def distill_cmd(
    teacher: Path = typer.Option(..., "--teacher", help="Teacher checkpoint, e.g. the released head imported as best.pt."),
    images: Optional[Path] = typer.Option(
        None, "--images", help="Unlabelled frames: an image folder, or a folder-format root (rgb/ + depth/: then the "
                               "report also scores student and teacher against that ground truth)."),
    video: Optional[Path] = typer.Option(None, "--video", help="Unlabelled frames from a video file instead."),
    captions: Optional[Path] = typer.Option(None, "--captions", help="One caption per frame (sorted files / video order)."),
    text: Optional[str] = typer.Option(None, "--text", "-t", help="One caption for every frame, e.g. \"warehouse aisle\"."),
    preset: str = typer.Option("edge", "--preset", help="The student's preset (its head; its backbone is the teacher's "
                                                        "depth model, one ViT per frame)."),
    output: Path = typer.Option(Path("runs/distill"), "--output", "-o", help="Folder for the teacher cache, the student "
                                                                            "(student/best.pt) and distill.json."),
    steps: int = typer.Option(300, "--steps", min=1, help="Student optimiser steps."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Batch size per process."),
    lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate (cosine schedule with warm-up)."),
    max_frames: int = typer.Option(0, "--max-frames", min=0, help="Use at most this many frames (0: all)."),
    holdout: int = typer.Option(8, "--holdout", min=1, help="Frames held out for the report (never trained on)."),
    w_ab: float = typer.Option(1.0, "--w-ab", help="Weight of the L1 of log A and log B against the teacher's."),
    seed: int = typer.Option(0, "--seed", help="Held-out split, data order and head initialisation."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    resume: bool = typer.Option(True, "--resume/--restart", help="Continue from OUT/student/last.pt when it exists."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Distil a one-ViT student from a teacher's metric depth on unlabelled frames (runs under torchrun too)."""
    from tr2m_edge.errors import ConfigError
    from tr2m_edge.train.distill import DistillConfig, distill

    if (images is None) == (video is None):
        raise ConfigError("Give the frames with exactly one of --images DIR or --video FILE.")
    cfg = DistillConfig(teacher=str(teacher), frames=str(images or video), out_dir=str(output), preset=preset,
                        captions=str(captions) if captions else None, text=text, max_frames=max_frames,
                        holdout=holdout, steps=steps, batch_size=batch_size, lr=lr, w_ab=w_ab, seed=seed,
                        device=device, progress=not no_progress)
    report = distill(cfg, resume=resume)
    if not report:
        return
    table = Table(title=f"Distilled {report['student_config']} on {report['frames']} frames "
                        f"({report['held_out']} held out)")
    for col in ("comparison", "AbsRel", "delta1", "images"):
        table.add_column(col)
    for key in ("student_vs_teacher", "student_vs_truth", "teacher_vs_truth"):
        if key in report:
            r = report[key]
            table.add_row(key.replace("_", " "), f"{r['abs_rel']:.4f}", f"{r['d1']:.4f}", str(r["images"]))
    console.print(table)
    console.print(escape(f"student: {report['student']}; report: {output / 'distill.json'}"))
