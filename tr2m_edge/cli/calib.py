"""``calib``: INT8 calibration of a bundle, a thin layer over :func:`tr2m_edge.calib.calibrate.calibrate_bundle`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from tr2m_edge.cli.app import app

console = Console(stderr=True, highlight=False, soft_wrap=True)
GATE_FAILED_EXIT = 1  # the run worked, but the INT8 variant is too inaccurate (bad input exits 2)


@app.command("calib")
def calib_cmd(
    bundle: Path = typer.Argument(..., help="Bundle folder written by `tr2m-edge export` (INT8 graphs are added to it)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of calibration images from the deployment "
                                                                 "camera (sub-folders included; unreadable files are skipped)."),
    video: Optional[Path] = typer.Option(None, "--video", help="Video file to sample calibration frames from."),
    synthetic: bool = typer.Option(False, "--synthetic", help="Use the procedural synthetic scenes (no data needed)."),
    num: int = typer.Option(32, "--num", "-n", min=1, help="Calibration frames (seeded random sample of the source)."),
    holdout: int = typer.Option(8, "--holdout", min=1, help="Held-out frames for the accuracy gate (never used to calibrate)."),
    method: str = typer.Option("minmax", "--method", help="Activation range calibration: minmax, entropy or percentile."),
    ops: Optional[str] = typer.Option(None, "--ops", help="Comma-separated op types to quantise (default: Conv,Gemm,MatMul, "
                                                          "chosen by measurement, and Gemm alone when those fail the "
                                                          "gate; LayerNormalization and Softmax stay float "
                                                          "unless named; the head's exp/reciprocal tail always stays float)."),
    max_drift: float = typer.Option(0.02, "--max-drift", help="Accuracy gate: largest AbsRel of INT8 against fp32 metric "
                                                              "depth on the held-out frames (0.02 = 2 %)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed: the same seed and source give the same frames."),
    text: Optional[list[str]] = typer.Option(None, "--text", "-t", help="Scene caption for the head's calibration "
                                                                        "(repeatable; default: the synthetic scenes' own "
                                                                        "captions, else the bundle's cached captions, "
                                                                        "else a neutral one)."),
    components: Optional[str] = typer.Option(None, "--components", help="Comma-separated graphs to quantise (default: "
                                                                        "depth, image_encoder if present, head)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for ONNX Runtime (default: all cores)."),
    trt: Optional[bool] = typer.Option(None, "--trt/--no-trt", help="Also build INT8 TensorRT engines from the Q/DQ "
                                                                   "graphs (default: when TensorRT and a CUDA GPU are present)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Calibrate INT8 (Q/DQ) graphs for the depth model, image encoder and head, and gate their accuracy.

    Exit status: 0 when the INT8 variant passes the gate, 1 when it is written but marked
    unusable (drift over --max-drift), 2 on bad input.
    """
    from tr2m_edge.calib.calibrate import calibrate_bundle
    from tr2m_edge.calib.quantize import parse_ops

    result = calibrate_bundle(
        bundle, images=images, video=video, synthetic=synthetic, num=num, holdout=holdout, method=method.lower(),
        ops=parse_ops(ops) if ops else None, max_drift=max_drift, seed=seed, texts=text or (),
        components=[c.strip() for c in components.split(",") if c.strip()] if components else None,
        threads=threads, trt=trt, progress=not quiet,
    )
    out = Console(highlight=False, soft_wrap=True)
    out.print(escape(f"Wrote {', '.join(result.files)} into {result.bundle}."))
    out.print(escape(result.gate.describe()))
    for line in result.gate.component_lines():
        out.print(escape(f"  {line}"))
    if not result.usable:
        console.print(escape(f"error: the INT8 variant is recorded as unusable: AbsRel {result.gate.abs_rel:.3%} > "
                             f"{result.gate.max_drift:.2%}; `run`/`bench --precision int8` refuse it. Try more or "
                             "other --images, --method percentile, or fewer --ops."), markup=False)
        raise typer.Exit(GATE_FAILED_EXIT)
