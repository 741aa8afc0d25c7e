"""The demo's steps, in order: train the tiny head, export a verified bundle, run it on a
video file, score metric depth on held-out scenes (with each scene's own caption and with
a caption of another scene family)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from tr2m_edge.demo.training import demo_train
from tr2m_edge.errors import ConfigError
from tr2m_edge.export import export_bundle
from tr2m_edge.metrics import average_metrics, compute_metrics
from tr2m_edge.runtime.pipeline import DepthPipeline
from tr2m_edge.runtime.run import RunOptions, run_from_options
from tr2m_edge.synthetic import FAMILIES, iter_scenes

console = Console(highlight=False)
FRAME = (140, 182)  # synthetic frame size (H, W), the tiny preset's input size
VAL_SEED = 90_000  # held-out synthetic scenes (training and validation use seeds < 2000)


def write_video(path: Path, frames: list[Any], fps: float = 10.0) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (FRAME[1], FRAME[0]))
    if not writer.isOpened():
        raise ConfigError(f"OpenCV cannot write {path}; check that the folder is writable.")
    try:
        for f in frames:
            writer.write(f.rgb[:, :, ::-1].copy())  # OpenCV writes BGR
    finally:
        writer.release()


def evaluate(bundle: Path, scenes: list[Any], shuffle: bool) -> dict[str, dict[str, float]]:
    """Metrics per family of the bundle (ONNX Runtime) on held-out scenes."""
    rows: dict[str, list[dict[str, float]]] = {}
    with DepthPipeline.from_bundle(bundle, backend="ort-cpu") as pipe:
        for i, frame in enumerate(scenes):
            # shuffle: the caption of a scene from another family (text carries the scale)
            other = next(s for s in scenes[i + 1:] + scenes[:i] if s.family != frame.family) if shuffle else frame
            pipe.set_scene(other.caption)
            out = pipe.infer(frame.rgb)
            cfg = pipe.config
            rows.setdefault(frame.family, []).append(
                compute_metrics(out.depth, frame.depth, cfg.min_depth, cfg.max_depth))
    result = {fam: average_metrics(r) for fam, r in rows.items()}
    result["all"] = average_metrics([m for r in rows.values() for m in r])
    return result


def run_demo(out_dir: Path, steps: int, frames: int, seed: int) -> dict[str, Any]:
    """Train, export and run the tiny model on synthetic scenes; returns the summary (also saved as JSON)."""
    if frames < 3:
        raise ConfigError(f"--frames must be at least 3 (one scene per family); got {frames}.")
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"out_dir": str(out_dir)}
    t0 = time.perf_counter()

    console.rule("1/4  train the tiny head on synthetic scenes")
    best = demo_train(out_dir / "train", steps=steps, seed=seed)
    summary["checkpoint"] = str(best)
    summary["train_s"] = round(time.perf_counter() - t0, 1)

    console.rule("2/4  export a verified ONNX bundle (fp32 + fp16, scene cache)")
    scenes = list(iter_scenes(frames, size=FRAME, seed=VAL_SEED + seed))
    captions = [next(s.caption for s in scenes if s.family == fam) for fam in FAMILIES if any(s.family == fam for s in scenes)]
    bundle = export_bundle(best, out_dir / "bundle", fp16=True, trt=False, frame_size=FRAME, scenes=captions)
    summary["bundle"] = str(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    summary["parity"] = manifest.get("parity", {})

    console.rule("3/4  run the bundle on a video file (ONNX Runtime, no PyTorch in the loop)")
    room = [s for s in scenes if s.family == scenes[0].family]
    video = out_dir / "input.mp4"
    write_video(video, room)
    opts = RunOptions(bundle=bundle, video=video, text=room[0].caption, backend="ort-cpu",
                      out=out_dir / "depth.mp4", save_depth=out_dir / "depth", mode="throughput")
    run = run_from_options(opts, console)
    summary["run"] = run.as_dict()

    console.rule("4/4  metric depth against ground truth on held-out scenes")
    summary["metrics"] = evaluate(bundle, scenes, shuffle=False)
    summary["metrics_shuffled_captions"] = evaluate(bundle, scenes, shuffle=True)
    summary["total_s"] = round(time.perf_counter() - t0, 1)
    (out_dir / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


