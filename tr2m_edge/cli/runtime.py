"""Runtime commands (``run``, ``bench``): thin layers over :mod:`tr2m_edge.runtime`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tr2m_edge.cli.app import app
from tr2m_edge.cli.options import with_options
from tr2m_edge.runtime.plans import PLAN_HELP
from tr2m_edge.runtime.run import BACKEND_HELP, DEVICE_HELP, RunOptions

console = Console(stderr=True, highlight=False, soft_wrap=True)


@app.command("run")
@with_options(RunOptions)
def run_cmd(**options: Any) -> None:
    """Live metric depth from a camera, stream, video, image folder or synthetic scenes."""
    from tr2m_edge.runtime.run import run_from_options

    summary = run_from_options(RunOptions(**options), console)
    console.print(escape(summary.describe()))
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


@app.command("bench")
def bench_cmd(
    bundle: Path = typer.Argument(..., help="Bundle folder to benchmark."),
    backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | fp16 | int8 (auto: fp16 on GPUs, fp32 on CPUs)."),
    frames: int = typer.Option(30, "--frames", "-n", min=1, help="Measured frames per mode."),
    warmup: int = typer.Option(5, "--warmup", min=0, help="Warm-up frames per mode (not measured)."),
    modes: str = typer.Option("serial,serial-split,throughput", "--modes",
                              help="Comma-separated: serial (all threads per session), serial-split (pipelined thread "
                                   "plan, one frame at a time), throughput (pipelined, no drops)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for ONNX Runtime (default: all cores)."),
    caption: Optional[str] = typer.Option(
        None, "--text", "-t", help="Scene caption used while benchmarking (default: the bundle's first cached caption, "
                                   "else 'a room with a wooden floor')."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Keep a new caption's scene bias in memory only (default: "
                                                           "the user cache; never the bundle)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Head checkpoint for --backend torch."),
    plan: str = typer.Option("auto", "--plan", help=PLAN_HELP),
    no_reference: bool = typer.Option(False, "--no-reference", help="Skip the accuracy drift check against fp32 ORT CPU."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the full report as JSON here."),
) -> None:
    """Per-stage latency percentiles, end-to-end latency, pipelined vs serial FPS, memory and drift."""
    from tr2m_edge.fileio import check_output_file, write_text_atomic
    from tr2m_edge.runtime.backends import resolve_device
    from tr2m_edge.runtime.bench import run_bench

    if json_out is not None:
        check_output_file(json_out, "--json")  # before the benchmark, not after it
    report = run_bench(
        bundle, backend=backend, precision=precision, frames=frames, warmup=warmup,
        modes=tuple(m.strip() for m in modes.split(",") if m.strip()), threads=threads, caption=caption,
        checkpoint=checkpoint, reference=not no_reference, progress=lambda m: console.print(f"[dim]{m}[/]"),
        device_id=resolve_device(device), cache_captions=not no_cache, plan=plan,
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
    table.add_row("plan", *[r.plan for r in report.results])
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
        write_text_atomic(json_out, json.dumps(report.as_dict(), indent=2) + os.linesep)
        out.print(f"report written to {json_out}")
