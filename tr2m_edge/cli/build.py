"""``tr2m-edge build``: TensorRT engines from a bundle, on the device that runs them (:mod:`tr2m_edge.runtime.build`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from tr2m_edge.cli.app import app

console = Console(highlight=False, soft_wrap=True)


@app.command("build")
def build_cmd(
    bundle: Path = typer.Argument(..., help="Bundle folder written by `tr2m-edge export` (engines are installed in it)."),
    fp16: bool = typer.Option(False, "--fp16", help="fp16 engines (the default when no precision is given)."),
    fp32: bool = typer.Option(False, "--fp32", help="fp32 engines (TF32 off, so they meet the fp32 parity tolerance)."),
    int8: bool = typer.Option(False, "--int8", help="INT8 engines: built by `tr2m-edge calib` (calibration frames and "
                                                    "its accuracy gate); refused here with that advice."),
    workspace: float = typer.Option(4096, "--workspace", min=64, help="TensorRT builder workspace limit in MB."),
    device: str = typer.Option("auto", "--device", help="GPU index to build for (auto: GPU 0); engines run only on "
                                                       "this GPU model with this TensorRT version."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Build TensorRT engines from a bundle's ONNX graphs here (TensorRT only, no PyTorch) and check their parity."""
    from tr2m_edge.errors import ConfigError
    from tr2m_edge.runtime.backends import resolve_device
    from tr2m_edge.runtime.build import build_bundle

    chosen = [name for name, on in (("fp16", fp16), ("fp32", fp32), ("int8", int8)) if on]
    if len(chosen) > 1:
        raise ConfigError(f"Give one precision; got --{' --'.join(chosen)} (build twice for two engine sets).")
    device_id = resolve_device(device)
    if device_id is None:
        raise ConfigError("tr2m-edge build makes TensorRT engines for a GPU; --device cpu has none. Give a GPU index, "
                          "or run the bundle's ONNX files on the CPU (tr2m-edge run --backend ort-cpu).")
    result = build_bundle(bundle, precision=chosen[0] if chosen else "fp16", workspace_mb=workspace,
                          device_id=device_id, progress=not quiet)
    console.print(escape(result.describe()))
    if result.removed:
        console.print(escape(f"removed engines built for another GPU / TensorRT: {', '.join(result.removed)}"))
