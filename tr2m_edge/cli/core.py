"""Core commands: ``info`` and ``import-official``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tr2m_edge.cli.app import app
from tr2m_edge.cli.encoders import DEPTH_MODEL, IMAGE_MODEL, TEXT_MODEL, encoder_sources

if TYPE_CHECKING:
    from tr2m_edge.config import ModelConfig

console = Console(highlight=False)


@app.command("info")
def info_cmd(
    bundle: Optional[Path] = typer.Argument(
        None, help="A bundle folder: verify its files and print its manifest summary instead."
    ),
) -> None:
    """Show package versions, ONNX Runtime providers, CUDA/TensorRT status and the presets (or a bundle)."""
    if bundle is not None:
        _bundle_info(bundle)
        return
    from tr2m_edge.config import get_preset, preset_names
    from tr2m_edge.system import collect

    info = collect()
    try:
        from tr2m_edge.model.summary import parameter_counts
    except ImportError:  # counting builds the models: PyTorch only (a runtime install has none)
        parameter_counts = None  # type: ignore[assignment]
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
    console.print(escape(f"OpenCV: {info.opencv.describe() if info.opencv else 'not installed'}"))
    for note in info.notes:
        console.print(escape(f"note: {note}"), style="yellow")

    presets = Table(title="Presets (parameters)", show_header=True)
    for col in ("preset", "input", "depth", "image features", "text", "head (trainable)", "range (m)"):
        presets.add_column(col)
    for name in preset_names():
        cfg = get_preset(name)
        counts = parameter_counts(cfg) if parameter_counts else dict.fromkeys(("depth", "image", "text", "head (trainable)"))

        def fmt(n: int | None) -> str:
            return "?" if n is None else f"{n / 1e6:.2f} M"

        image = "shared with depth" if cfg.image is None else fmt(counts["image"])
        h, w = cfg.preprocess.input_size
        presets.add_row(
            name, f"{h}x{w}", fmt(counts["depth"]), image, fmt(counts["text"]),
            fmt(counts["head (trainable)"]), f"{cfg.min_depth:g}-{cfg.max_depth:g}",
        )
    console.print(presets)
    if parameter_counts is None:
        console.print(escape("parameter counts (?) need PyTorch: pip install 'tr2m-edge[export]'"))

    console.print("[bold]Encoder sources[/] (--depth-model / --image-model / --text-model override them):")
    for name in preset_names():
        cfg = get_preset(name)
        console.print(escape(f"  {name}: " + "; ".join(_source_lines(cfg)) + f"; text in {cfg.text.precision}"),
                      soft_wrap=True)


@app.command("import-official")
def import_official_cmd(
    weights: Path = typer.Argument(..., help="The authors' released head weights, e.g. da_s_vitl_vitl.pth."),
    output: Path = typer.Option(Path("best.pt"), "--output", "-o", help="Where to write the tr2m-edge checkpoint."),
    preset: str = typer.Option("paper", help="Preset whose head the weights belong to (paper, edge, tiny)."),
    depth_model: Optional[str] = DEPTH_MODEL,
    image_model: Optional[str] = IMAGE_MODEL,
    text_model: Optional[str] = TEXT_MODEL,
) -> None:
    """Convert the authors' released TR2M head weights into a tr2m-edge checkpoint.

    The checkpoint's config records where the frozen encoders come from (the preset's hub
    ids, or the --depth-model/--image-model/--text-model given here); they load at export.
    """
    from tr2m_edge.checkpoint import import_official, save_checkpoint
    from tr2m_edge.config import get_preset
    from tr2m_edge.fileio import check_output_file
    from tr2m_edge.model.encoder_sources import with_encoder_sources

    check_output_file(output, "--output")
    cfg = with_encoder_sources(get_preset(preset), encoder_sources(depth_model, image_model, text_model))
    ckpt = import_official(weights, preset=preset, config=cfg)
    save_checkpoint(ckpt, output)
    n = sum(v.numel() for v in ckpt.head.values())
    console.print(escape(f"Imported {len(ckpt.head)} tensors ({n / 1e6:.2f} M parameters) from {weights} -> {output}"))
    for line in _source_lines(cfg):
        console.print(escape(f"  {line}"))


def _source_lines(cfg: "ModelConfig") -> list[str]:
    image = "the depth model's own tokens" if cfg.image is None else cfg.image.describe()
    return [f"depth: {cfg.depth.describe()}", f"image features: {image}", f"text: {cfg.text.describe()}"]


def _bundle_info(path: Path) -> None:
    """Verify a bundle (every sha256) and print its manifest summary."""
    from tr2m_edge.bundle import open_bundle, parity_summary

    bundle = open_bundle(path)
    m = bundle.manifest
    cfg = m.model
    h, w = cfg.preprocess.input_size
    frame = "any (frame_hw input)" if m.frame_size is None else f"{m.frame_size[0]}x{m.frame_size[1]}"
    console.print(f"[bold]Bundle[/] {bundle.root}  (format {m.format} v{m.format_version}, all {len(m.files)} files verified)")
    console.print(f"model: {cfg.name}, input {h}x{w}{' (dynamic)' if m.dynamic else ''}, frame {frame}, "
                  f"depth range {cfg.min_depth:g}-{cfg.max_depth:g} m, "
                  f"{'shared backbone' if cfg.shared_backbone else 'separate image encoder'}")
    console.print(f"exporter: {m.exporter.get('name')} opset {m.exporter.get('opset')} ({m.exporter.get('choice', '')}); "
                  f"tokenizer: {m.tokenizer.get('name')} ({m.tokenizer.get('file')})")
    console.print(f"preprocess resize: {cfg.preprocess.resize}; text embedding: {cfg.text.precision}")
    for line in _source_lines(cfg):
        console.print(escape(f"encoder {line}"))
    if m.tensorrt:
        console.print(f"TensorRT: {m.tensorrt.get('version')} on {m.tensorrt.get('gpu')} "
                      f"(sm {m.tensorrt.get('compute_capability')}), {m.tensorrt.get('precision')}")
    table = Table(title="Files", show_header=True)
    for col in ("component", "precision", "file", "MB", "sha256", "inputs -> outputs"):
        table.add_column(col)
    for f in m.files:
        size = (bundle.root / f.file).stat().st_size / 1e6
        io = ", ".join(t.name for t in f.inputs) + " -> " + ", ".join(t.name for t in f.outputs)
        table.add_row(f.component, f.precision, f.file, f"{size:.1f}", f.sha256[:12], io if f.inputs else "")
    console.print(table)
    for line in parity_summary(m):
        console.print(escape(line))
    from tr2m_edge.caption_cache import CaptionCache

    scenes = CaptionCache(bundle).verify()  # every cached bias checked too: a tampered one is named, exit 2
    listed = ", ".join(repr(s.caption) for s in scenes) or "none"
    console.print(escape(f"cached scenes: {listed}" + (f" ({len(scenes)} verified)" if scenes else "")))
    from tr2m_edge.cli.export import user_cache_line

    user = user_cache_line(path)
    if user:
        console.print(escape(user), soft_wrap=True)
