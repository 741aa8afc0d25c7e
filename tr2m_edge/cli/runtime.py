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
from tr2m_edge.fileio import write_text_atomic
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
    bundles: list[Path] = typer.Argument(..., help="Bundle folder to benchmark; two or more: measured side by side "
                                                   "with the same frames and settings (e.g. an old and a new head)."),
    backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | fp16 | int8 (auto: fp16 on GPUs, fp32 on CPUs); "
                                                             "a comma list (fp32,fp16,int8) compares them side by side."),
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
    peak: Optional[float] = typer.Option(
        None, "--peak", metavar="GFLOPS", help="The device's peak in GFLOP/s (datasheet figure, 2 FLOPs per MAC) for "
                                               "the fraction-of-peak column (default: a short matmul probe: numpy "
                                               "float32 on the CPU, PyTorch float16 on a CUDA GPU)."),
    rounds: int = typer.Option(1, "--rounds", min=1, help="With several bundles: measure them all this many times in "
                                                          "turn (A, B, A, B, ...) and keep each one's best round."),
) -> None:
    """Per-stage latency percentiles, end-to-end latency, pipelined vs serial FPS, GMAC/s, memory and drift."""
    from tr2m_edge.errors import ConfigError
    from tr2m_edge.fileio import check_output_file
    from tr2m_edge.runtime.backends import resolve_device
    from tr2m_edge.runtime.bench import compare_precisions, parse_precisions, run_bench

    if json_out is not None:
        check_output_file(json_out, "--json")  # before the benchmark, not after it
    options: dict[str, Any] = dict(
        backend=backend, frames=frames, warmup=warmup, modes=tuple(m.strip() for m in modes.split(",") if m.strip()),
        threads=threads, caption=caption, checkpoint=checkpoint, reference=not no_reference,
        progress=lambda m: console.print(f"[dim]{escape(m)}[/]"), device_id=resolve_device(device),
        cache_captions=not no_cache, plan=plan, peak_gflops=peak,
    )
    out = Console(highlight=False, soft_wrap=True)
    if rounds != 1 and len(bundles) < 2:
        raise ConfigError("--rounds goes with two or more bundles (bench A B --rounds N).")
    if "," in precision:
        if len(bundles) > 1:
            raise ConfigError("--precision a,b compares the precisions of one bundle; give one bundle.")
        _print_precisions(compare_precisions(bundles[0], precisions=parse_precisions(precision), **options), out, json_out)
        return
    if len(bundles) > 1:
        from tr2m_edge.runtime.bench_bundles import compare_bundles

        comparison = compare_bundles(bundles, rounds=rounds, precision=precision, **options)
        for report in comparison.reports:
            out.rule(escape(report.bundle))
            print_report(out, report)
        print_comparison(out, comparison.rows())
        data = comparison.as_dict()
    else:
        report = run_bench(bundles[0], precision=precision, **options)
        print_report(out, report)
        data = report.as_dict()
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(data, indent=2) + os.linesep)
        out.print(f"report written to {escape(str(json_out))}")


def print_report(out: Console, report: Any) -> None:
    """One bundle's bench report: latency table, speedup, compute, memory, drift."""
    out.print(f"backend: [bold]{report.backend}[/] ({escape(report.reason)}); precision [bold]{report.precision}[/]; "
              f"{report.threads} CPU threads; frame {report.frame_size[1]}x{report.frame_size[0]} -> input "
              f"{report.input_size[1]}x{report.input_size[0]}")
    if report.torch_tuning:
        chosen = ", ".join(f"{k} {v}" for k, v in report.torch_tuning["chosen"].items())
        out.print(escape(f"torch settings (measured on {report.torch_tuning['device']}): {chosen}"))
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
    print_compute(out, report.compute)
    out.print("memory (MiB): " + ", ".join(f"{k} {v}" for k, v in report.memory_mb.items()))
    if report.drift is not None:
        d = report.drift
        out.print(f"drift vs {report.drift_reference}: max |diff| {d['max_abs']:.3g} m, mean |diff| {d['mean_abs']:.3g} m, "
                  f"rel {d['rel']:.3g}, AbsRel {d['abs_rel']:.3g}")


def _print_precisions(bench: Any, out: Console, json_out: Path | None) -> None:
    """``bench --precision a,b``: the header, one latency table over (precision, mode) and the side-by-side summary."""
    first = bench.reports[0]
    out.print(f"backend: [bold]{first.backend}[/] ({escape(first.reason)}); {first.threads} CPU threads; frame "
              f"{first.frame_size[1]}x{first.frame_size[0]} -> input {first.input_size[1]}x{first.input_size[0]}; "
              f"precisions: [bold]{', '.join(r.precision for r in bench.reports)}[/]")
    table = Table(title="Latency (ms): p50 / p90")
    table.add_column("stage")
    columns = [(r, m) for m_index in range(len(first.results)) for r in bench.reports for m in [r.results[m_index]]]
    for r, m in columns:
        table.add_column(f"{r.precision} {m.mode}")
    stages = [s for s in ("preprocess", "depth", "image_encoder", "head", "postprocess")
              if any(s in m.stage_ms for _, m in columns)]
    for s in stages + ["end-to-end"]:
        cells = [m.latency_ms if s == "end-to-end" else m.stage_ms.get(s) for _, m in columns]
        table.add_row(s, *["-" if p is None else f"{p['p50']:.1f} / {p['p90']:.1f}" for p in cells])
    table.add_row("throughput (FPS)", *[f"{m.fps:.2f}" for _, m in columns])
    out.print(table)
    summary = Table(title=f"Side by side (x = relative to {first.precision})")
    for col in ("precision", "best serial FPS", "pipelined FPS", "drift AbsRel", "delta1", "max |diff| (m)"):
        summary.add_column(col)
    for row in bench.summary():
        d = row["drift"] or {}

        def fps(key: str) -> str:
            value, rel = row[f"{key}_fps"], row[f"{key}_vs_first"]
            return "-" if value is None else f"{value:.2f} ({rel:.2f}x)"

        summary.add_row(row["precision"], fps("serial"), fps("throughput"),
                        f"{d['abs_rel']:.3g}" if d else "-", f"{d['delta1']:.4f}" if d else "-",
                        f"{d['max_abs']:.3g}" if d else "-")
    out.print(summary)
    out.print("drift: against ort-cpu fp32 (serial) on the same frames; memory (MiB): "
              + ", ".join(f"{k} {v}" for k, v in first.memory_mb.items()))
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(bench.as_dict(), indent=2) + os.linesep)
        out.print(f"report written to {escape(str(json_out))}")


def print_compute(out: Console, compute: dict[str, Any] | None) -> None:
    """The achieved-compute table of a bench report (GMAC/s per component, share of the peak)."""
    if compute is None:
        out.print("[dim]compute rate: the bundle records no MAC counts (exported before they were recorded; "
                  "re-export it)[/]")
        return
    peak = compute["peak"]
    title = "Achieved compute: GMAC/s (share of peak)"
    table = Table(title=title)
    table.add_column("component")
    table.add_column("GMAC / frame")
    modes = list(compute["modes"])
    for mode in modes:
        table.add_column(mode)
    for name, gmac in compute["gmac"].items():
        row = ["per-frame path (x FPS)" if name == "frame" else name, f"{gmac:.3f}"]
        for mode in modes:
            cell = compute["modes"][mode].get(name)
            if cell is None:
                row.append("-")
            else:
                frac = "" if cell["fraction"] is None else f" ({100 * cell['fraction']:.0f} %)"
                row.append(f"{cell['gmac_per_s']:.1f}{frac}")
        table.add_row(*row)
    out.print(table)
    if peak is not None:
        out.print(escape(f"peak: {peak['gmac_per_s']:.1f} GMAC/s on {peak['device']} ({peak['how']}); "
                         f"MACs counted at input {compute['input_size'][0]}x{compute['input_size'][1]}"))
    else:
        out.print("peak: no probe on this device; give it with --peak GFLOPS")


def print_comparison(out: Console, rows: list[dict[str, Any]]) -> None:
    """The side-by-side table of several bundles (``bench A B``)."""
    modes = list(rows[0]["fps"])
    table = Table(title="Bundles side by side: per-frame throughput (FPS, best round)")
    for col in ("bundle", "preset", "decoder stride", "GMAC / frame", *modes, "head ms (" + modes[0] + ")"):
        table.add_column(col)
    for r in rows:
        gmac = "-" if r["gmac_per_frame"] is None else f"{r['gmac_per_frame']:.2f}"
        head = r["head_ms"].get(modes[0])
        table.add_row(escape(r["bundle"]), escape(r["preset"]), str(r["output_stride"]), gmac,
                      *[f"{r['fps'][m]:.2f}" for m in modes], "-" if head is None else f"{head:.1f}")
    out.print(table)
    base = rows[0]
    for r in rows[1:]:
        ratios = ", ".join(f"{m} {r['fps'][m] / base['fps'][m]:.2f}x" for m in modes if base["fps"].get(m))
        out.print(escape(f"{r['bundle']} vs {base['bundle']}: {ratios}"))
