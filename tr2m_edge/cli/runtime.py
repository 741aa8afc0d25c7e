"""Runtime commands (``run``, ``bench``): thin layers over :mod:`tr2m_edge.runtime`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from tr2m_edge.cli import app

console = Console(stderr=True, highlight=False, soft_wrap=True)
BACKEND_HELP = "auto | trt | ort-trt | ort-cuda | ort-cpu | torch (auto picks the fastest available and says why)."


@app.command("run")
def run_cmd(
    bundle: Path = typer.Option(Path("bundle"), "--bundle", "-b", envvar="TR2M_EDGE_BUNDLE",
                                help="Bundle folder written by `tr2m-edge export` (env TR2M_EDGE_BUNDLE)."),
    camera: Optional[int] = typer.Option(None, "--camera", help="Camera index (OpenCV), e.g. 0."),
    video: Optional[Path] = typer.Option(None, "--video", help="Video file to read to the end."),
    images: Optional[str] = typer.Option(None, "--images", help="Image folder or glob, e.g. 'frames/*.png'."),
    rtsp: Optional[str] = typer.Option(None, "--rtsp", help="Network stream URL (rtsp://, http://)."),
    synthetic: bool = typer.Option(False, "--synthetic", help="Stream procedural synthetic scenes (no camera needed)."),
    text: Optional[str] = typer.Option(None, "--text", "-t", help="Scene caption, or the name of a cached scene."),
    scene_file: Optional[Path] = typer.Option(None, "--scene-file",
                                              help="Text file whose first line is the caption; edits apply while running."),
    scene_stdin: bool = typer.Option(False, "--scene-stdin", help="Read new captions from stdin, one per line."),
    backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | fp16 | int8 (auto: fp16 on GPUs, fp32 on CPUs)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Head checkpoint (best.pt) for --backend torch."),
    mode: str = typer.Option("auto", "--mode",
                             help="auto | latency | throughput | serial (auto: latency for cameras/streams, throughput for files)."),
    show: bool = typer.Option(False, "--show", help="Show a window with colourised metric depth (q: stop, n: next cached scene)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write RGB | depth side by side to this video (.mp4/.avi)."),
    save_depth: Optional[Path] = typer.Option(None, "--save-depth", help="Folder for 16-bit PNG depth (mm) and frames.jsonl."),
    save_npy: bool = typer.Option(False, "--save-npy", help="With --save-depth: also write float32 .npy depth in metres."),
    stats: bool = typer.Option(False, "--stats", help="Print FPS, per-stage ms and drops every second."),
    frames: Optional[int] = typer.Option(None, "--frames", "-n", min=1, help="Stop after this many frames."),
    fps: float = typer.Option(0.0, "--fps", help="Frame rate of --out (default: the source's, else 30)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for ONNX Runtime (default: all cores)."),
    queue_size: int = typer.Option(2, "--queue-size", min=1, help="Frames each pipeline queue holds (throughput mode)."),
    fp16: bool = typer.Option(False, "--fp16", help="Torch backend on CUDA: run in half precision."),
    cuda_graphs: bool = typer.Option(False, "--cuda-graphs", help="Torch backend on CUDA: replay captured CUDA graphs."),
    seed: int = typer.Option(0, "--seed", help="Seed of --synthetic scenes."),
) -> None:
    """Live metric depth from a camera, stream, video, image folder or synthetic scenes."""
    from tr2m_edge.runtime.launch import RunOptions, run_from_options

    opts = RunOptions(
        bundle=bundle, camera=camera, video=video, images=images, rtsp=rtsp, synthetic=synthetic, text=text,
        scene_file=scene_file, scene_stdin=scene_stdin, backend=backend, precision=precision,
        checkpoint=checkpoint, mode=mode, show=show, out=out, save_depth=save_depth, save_npy=save_npy,
        stats=stats, frames=frames, fps=fps, threads=threads, queue_size=queue_size, fp16=fp16,
        cuda_graphs=cuda_graphs, seed=seed,
    )
    summary = run_from_options(opts, console)
    extra = f", {summary.dropped} dropped (latency mode)" if summary.dropped else ""
    extra += f", {summary.skipped} skipped" if summary.skipped else ""
    extra += f", {summary.converted} converted" if summary.converted else ""
    extra += f", {summary.nonfinite_values} non-finite values clamped" if summary.nonfinite_values else ""
    state = "interrupted: drained and closed" if summary.interrupted else "done"
    console.print(
        f"{state}: {summary.frames_read} frames read, {summary.frames_written} written{extra} "
        f"in {summary.seconds:.1f} s ({summary.fps:.1f} FPS, {summary.backend}, {summary.mode} mode)"
    )


@app.command("bench")
def bench_cmd(
    bundle: Path = typer.Argument(..., help="Bundle folder to benchmark."),
    backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | fp16 | int8."),
    frames: int = typer.Option(30, "--frames", "-n", min=1, help="Measured frames per mode."),
    warmup: int = typer.Option(5, "--warmup", min=0, help="Warm-up frames per mode (not measured)."),
    modes: str = typer.Option("serial,serial-split,throughput", "--modes",
                              help="Comma-separated: serial (all threads per session), serial-split (pipelined thread "
                                   "plan, one frame at a time), throughput (pipelined, no drops)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for ONNX Runtime (default: all cores)."),
    caption: str = typer.Option("a room with a wooden floor", "--text", "-t", help="Scene caption used while benchmarking."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Head checkpoint for --backend torch."),
    no_reference: bool = typer.Option(False, "--no-reference", help="Skip the accuracy drift check against fp32 ORT CPU."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the full report as JSON here."),
) -> None:
    """Per-stage latency percentiles, end-to-end latency, pipelined vs serial FPS, memory and drift."""
    from tr2m_edge.runtime.bench import run_bench

    report = run_bench(
        bundle, backend=backend, precision=precision, frames=frames, warmup=warmup,
        modes=tuple(m.strip() for m in modes.split(",") if m.strip()), threads=threads, caption=caption,
        checkpoint=checkpoint, reference=not no_reference, progress=lambda m: console.print(f"[dim]{m}[/]"),
    )
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"backend: [bold]{report.backend}[/] ({report.reason}); {report.threads} CPU threads; "
              f"frame {report.frame_size[1]}x{report.frame_size[0]} -> input {report.input_size[1]}x{report.input_size[0]}")
    table = Table(title="Latency (ms): mean / p50 / p90 / p99")
    table.add_column("stage")
    for r in report.results:
        table.add_column(r.mode)
    stages = [s for s in ("preprocess", "depth", "image_encoder", "head", "postprocess")
              if any(s in r.stage_ms for r in report.results)]
    for s in stages + ["end-to-end"]:
        row = [s]
        for r in report.results:
            p = r.latency_ms if s == "end-to-end" else r.stage_ms.get(s)
            row.append("-" if p is None else f"{p['mean']:.1f} / {p['p50']:.1f} / {p['p90']:.1f} / {p['p99']:.1f}")
        table.add_row(*row)
    table.add_row("throughput (FPS)", *[f"{r.fps:.2f}" + (f" ({r.dropped} dropped)" if r.dropped else "")
                                          for r in report.results])
    out.print(table)
    if report.speedup is not None:
        out.print(f"pipelined / best serial throughput: {report.speedup:.2f}x "
                  "(throughput-mode latency includes time queued behind earlier frames)")
    out.print("memory (MiB): " + ", ".join(f"{k} {v}" for k, v in report.memory_mb.items()))
    if report.drift is not None:
        d = report.drift
        out.print(f"drift vs {report.drift_reference}: max |diff| {d['max_abs']:.3g} m, mean |diff| {d['mean_abs']:.3g} m, "
                  f"rel {d['rel']:.3g}, AbsRel {d['abs_rel']:.3g}")
    if json_out is not None:
        json_out.write_text(json.dumps(report.as_dict(), indent=2) + os.linesep)
        out.print(f"report written to {json_out}")
