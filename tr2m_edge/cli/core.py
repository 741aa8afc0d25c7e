"""Core commands: ``info`` and ``import-official``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from tr2m_edge.cli import app

console = Console(highlight=False)


@app.command("info")
def info_cmd() -> None:
    """Show package versions, ONNX Runtime providers, CUDA/TensorRT status and the presets."""
    from tr2m_edge.config import get_preset, preset_names
    from tr2m_edge.model.summary import parameter_counts
    from tr2m_edge.system import collect

    info = collect()
    table = Table(title="Packages", show_header=True)
    table.add_column("package")
    table.add_column("version")
    for name, version in info.versions.items():
        table.add_row(name, version or "[dim]not installed[/]")
    console.print(table)
    console.print(f"ONNX Runtime providers: {', '.join(info.ort_providers) or 'none'}")
    console.print(f"PyTorch CUDA: {info.torch_cuda or 'not available'}")
    console.print(f"cuda-python: {info.cuda_python or 'no CUDA device'}")
    console.print(f"TensorRT: {info.tensorrt or 'not importable'}")
    for note in info.notes:
        console.print(f"[yellow]note:[/] {note}")

    presets = Table(title="Presets (parameters)", show_header=True)
    for col in ("preset", "input", "depth", "image features", "text", "head (trainable)", "range (m)"):
        presets.add_column(col)
    for name in preset_names():
        cfg = get_preset(name)
        counts = parameter_counts(cfg)

        def fmt(n: int | None) -> str:
            return "?" if n is None else f"{n / 1e6:.2f} M"

        image = "shared with depth" if cfg.image is None else fmt(counts["image"])
        h, w = cfg.preprocess.input_size
        presets.add_row(
            name, f"{h}x{w}", fmt(counts["depth"]), image, fmt(counts["text"]),
            fmt(counts["head (trainable)"]), f"{cfg.min_depth:g}-{cfg.max_depth:g}",
        )
    console.print(presets)


@app.command("import-official")
def import_official_cmd(
    weights: Path = typer.Argument(..., help="The authors' released head weights, e.g. da_s_vitl_vitl.pth."),
    output: Path = typer.Option(Path("best.pt"), "--output", "-o", help="Where to write the tr2m-edge checkpoint."),
    preset: str = typer.Option("paper", help="Preset whose head the weights belong to (paper, edge, tiny)."),
) -> None:
    """Convert the authors' released TR2M head weights into a tr2m-edge checkpoint."""
    from tr2m_edge.checkpoint import import_official, save_checkpoint

    ckpt = import_official(weights, preset=preset)
    save_checkpoint(ckpt, output)
    n = sum(v.numel() for v in ckpt.head.values())
    console.print(f"Imported {len(ckpt.head)} tensors ({n / 1e6:.2f} M parameters) from {weights} -> {output}")
