"""``tr2m-edge demo``: the offline end-to-end run (synthetic scenes -> train -> export -> run).

Needs no downloads and no GPU: the ``tiny`` preset (random frozen encoders of the real model
classes) learns metric scale on procedural RGB-D scenes, is exported to a verified ONNX
bundle, and the bundle runs through the runtime on a video file and on held-out scenes,
whose ground truth gives the metrics. Each step is a library call of its layer.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tr2m_edge.cli import app
from tr2m_edge.errors import ConfigError

console = Console(highlight=False)
FRAME = (140, 182)  # synthetic frame size (H, W), the tiny preset's input size
VAL_SEED = 90_000  # held-out synthetic scenes (training and validation use seeds < 2000)


def _write_video(path: Path, frames: list[Any], fps: float = 10.0) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (FRAME[1], FRAME[0]))
    if not writer.isOpened():
        raise ConfigError(f"OpenCV cannot write {path}; check that the folder is writable.")
    try:
        for f in frames:
            writer.write(f.rgb[:, :, ::-1].copy())  # OpenCV writes BGR
    finally:
        writer.release()


def _evaluate(bundle: Path, scenes: list[Any], shuffle: bool) -> dict[str, dict[str, float]]:
    """Metrics per family of the bundle (ONNX Runtime) on held-out scenes."""
    from tr2m_edge.metrics import average_metrics, compute_metrics
    from tr2m_edge.runtime import DepthPipeline

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
    from tr2m_edge.export import export_bundle
    from tr2m_edge.runtime.launch import RunOptions, run_from_options
    from tr2m_edge.synthetic import FAMILIES, iter_scenes
    from tr2m_edge.train import demo_train

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
    _write_video(video, room)
    opts = RunOptions(bundle=bundle, video=video, text=room[0].caption, backend="ort-cpu",
                      out=out_dir / "depth.mp4", save_depth=out_dir / "depth", mode="throughput")
    run = run_from_options(opts, console)
    summary["run"] = run.as_dict()

    console.rule("4/4  metric depth against ground truth on held-out scenes")
    summary["metrics"] = _evaluate(bundle, scenes, shuffle=False)
    summary["metrics_shuffled_captions"] = _evaluate(bundle, scenes, shuffle=True)
    summary["total_s"] = round(time.perf_counter() - t0, 1)
    (out_dir / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _render(summary: dict[str, Any]) -> None:
    table = Table(title="Held-out synthetic scenes, bundle on ONNX Runtime (CPU)")
    for col in ("family", "AbsRel", "RMSE (m)", "d1", "AbsRel, wrong-family caption"):
        table.add_column(col)
    for fam, m in summary["metrics"].items():
        s = summary["metrics_shuffled_captions"][fam]
        table.add_row(fam, f"{m['abs_rel']:.3f}", f"{m['rmse']:.2f}", f"{m['d1']:.3f}", f"{s['abs_rel']:.3f}")
    console.print(table)
    run = summary["run"]
    console.print(f"video run: {run['frames_written']}/{run['frames_read']} frames written at {run['fps']:.1f} FPS "
                  f"({run['backend']}, {run['mode']})")
    out = Path(summary["out_dir"])
    console.print(f"outputs: {summary['checkpoint']}, {summary['bundle']}/, {out / 'depth.mp4'}, {out / 'depth'}/, "
                  f"{out / 'demo.json'}  ({summary['total_s']} s in all)")


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Folder for the checkpoint, bundle, videos and depth maps."),
    steps: int = typer.Option(200, min=1, help="Training steps of the tiny head (more: better metrics, longer run)."),
    frames: int = typer.Option(24, min=3, help="Held-out synthetic scenes for the video run and the metrics."),
    seed: int = typer.Option(0, help="Seed of the synthetic scenes and of training."),
) -> None:
    """Offline end-to-end demo: synthetic scenes -> train -> export -> run -> metrics (no downloads, CPU)."""
    _render(run_demo(out, steps, frames, seed))
