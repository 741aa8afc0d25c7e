"""Export commands: ``export`` (checkpoint -> bundle) and ``scenes`` (caption cache)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tr2m_edge.cli.app import app
from tr2m_edge.cli.encoders import DEPTH_MODEL, IMAGE_MODEL, OFFLINE, TEXT_MODEL, encoder_sources

if TYPE_CHECKING:
    from tr2m_edge.caption_cache import CaptionCache

console = Console(highlight=False)
scenes_app = typer.Typer(help="Per-scene caption cache of a bundle (BUNDLE/scenes/).", no_args_is_help=True)
app.add_typer(scenes_app, name="scenes")


@app.command("export")
def export_cmd(
    ckpt: Optional[Path] = typer.Option(None, "--ckpt", help="Checkpoint to export (best.pt from `tr2m-edge train`)."),
    output: Path = typer.Option(Path("bundle"), "--output", "-o", help="Bundle folder to write (an existing bundle is replaced)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Preset of a --random-head export: tiny, edge or paper."),
    random_head: bool = typer.Option(False, "--random-head", help="Export a random head instead of a checkpoint (tests, bench)."),
    random_encoders: bool = typer.Option(
        False, "--random-encoders", help="With --random-head: random encoders at the published sizes (no downloads; speed only)."
    ),
    fp16: bool = typer.Option(False, "--fp16", help="Also write FP16 graphs (fp32 I/O; LayerNorm/Softmax/Exp/reciprocal in fp32)."),
    trt: Optional[bool] = typer.Option(
        None, "--trt/--no-trt", help="Also run the build step: TensorRT engines (default: when TensorRT and a CUDA GPU "
                                     "are present). On another machine: `tr2m-edge build BUNDLE` there."
    ),
    device: str = typer.Option("auto", "--device", help="GPU index the TensorRT engines are built for (auto: GPU 0), "
                                                       "or cpu: no engines."),
    dynamic: bool = typer.Option(False, "--dynamic", help="Dynamic batch/height/width (multiples of 14) instead of a fixed size."),
    frame_size: Optional[str] = typer.Option(
        None, "--frame-size", help="Fixed camera frame HxW, e.g. 480x640 (default: any frame size, given per call)."
    ),
    input_size: Optional[str] = typer.Option(None, "--input-size", help="Network input HxW, multiples of 14 (default: the preset's)."),
    scene: list[str] = typer.Option([], "--scene", help="Caption to pre-cache, e.g. \"warehouse aisle\" (repeatable)."),
    exporter: str = typer.Option("auto", "--exporter", help="ONNX exporter: auto (measured default), torchscript or dynamo."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset, >= 17 (LayerNormalization as one op; 18 for "
                              "the preprocess graph with --resize antialias)."),
    text_fp16: Optional[bool] = typer.Option(
        None, "--text-fp16/--text-fp32",
        help="Caption embeddings in fp16 as the released code computes them on CUDA (fp16 CLIP tower, fp32 "
             "LayerNorm; ~0.15 % from fp32), or in fp32 (default: the config's text precision).",
    ),
    resize: Optional[str] = typer.Option(
        None, "--resize",
        help="Frame -> network resize: bilinear (align_corners, no antialiasing, as the released evaluation; "
             "default) or antialias (as the released demo; for cameras much larger than the input).",
    ),
    min_depth: Optional[float] = typer.Option(None, "--min-depth", help="Clip depth below this, metres (default: the config's, 0.001)."),
    max_depth: Optional[float] = typer.Option(
        None, "--max-depth", help="Clip depth above this, metres (default: the config's; paper/edge 80, KITTI's cap)."
    ),
    depth_model: Optional[str] = DEPTH_MODEL,
    image_model: Optional[str] = IMAGE_MODEL,
    text_model: Optional[str] = TEXT_MODEL,
    offline: bool = OFFLINE,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Export a checkpoint to a self-checking deployment bundle (ONNX, FP16, TensorRT, scene cache)."""
    from tr2m_edge.bundle import open_bundle, parity_summary
    from tr2m_edge.config import parse_frame_size, parse_size
    from tr2m_edge.export import export_bundle, export_source
    from tr2m_edge.runtime.backends import resolve_device

    fsize = parse_frame_size(frame_size) if frame_size else None
    isize = parse_size(input_size) if input_size else None
    device_id = resolve_device(device)
    source = export_source(ckpt, preset=preset, random_head=random_head, random_encoders=random_encoders,
                           sources=encoder_sources(depth_model, image_model, text_model, offline))
    path = export_bundle(
        source, output, fp16=fp16, trt=trt, device_id=device_id, dynamic=dynamic, frame_size=fsize, input_size=isize,
        opset=opset, exporter=exporter, scenes=scene, progress=not quiet, text_fp16=text_fp16, resize=resize,
        min_depth=min_depth, max_depth=max_depth,
    )
    bundle = open_bundle(path)
    console.print(escape(f"Wrote bundle {path} ({len(bundle.manifest.files)} files, verified)."))
    for line in parity_summary(bundle.manifest):
        console.print(escape(f"  {line}"))


def user_cache_line(bundle: Path) -> str | None:
    """One line on the captions ``run`` / ``bench`` cached for this bundle in the user cache (None: none)."""
    from tr2m_edge.bundle import open_bundle
    from tr2m_edge.caption_cache import CaptionCache, user_scenes_dir
    from tr2m_edge.errors import OutputError

    opened = open_bundle(bundle, verify=False)
    try:
        cache = CaptionCache(opened, root=user_scenes_dir(opened))
    except OutputError:
        return None
    entries = [e for e in cache.list() if cache.is_current(e)]
    if not entries:
        return None
    return (f"user cache {cache.root}: {', '.join(repr(e.caption) for e in entries)} (computed by run / bench; "
            "`tr2m-edge scenes add` puts a caption into the bundle)")


def _open_cache(bundle: Path) -> "CaptionCache":
    from tr2m_edge.runtime.scene_bias import caption_cache

    return caption_cache(bundle)


@scenes_app.command("add")
def scenes_add(
    bundle: Path = typer.Argument(..., help="Bundle folder written by `tr2m-edge export`."),
    captions: list[str] = typer.Argument(..., help="Caption(s) describing the scene, e.g. \"warehouse aisle\"."),
) -> None:
    """Compute and cache the scene bias of one or more captions (ONNX Runtime, no PyTorch)."""
    cache = _open_cache(bundle)
    for caption in captions:
        entry = cache.add(caption)
        console.print(escape(f"cached '{entry.normalised}' as {entry.name} ({entry.shape[-1]} values)"))


@scenes_app.command("list")
def scenes_list(bundle: Path = typer.Argument(..., help="Bundle folder written by `tr2m-edge export`.")) -> None:
    """List the cached scene captions of a bundle."""
    import datetime

    cache = _open_cache(bundle)
    entries = cache.list()
    user = user_cache_line(bundle)
    if not entries:
        console.print(escape(f"No cached scenes in {bundle}. Add one with `tr2m-edge scenes add {bundle} \"warehouse aisle\"`."))
        if user:
            console.print(escape(user), soft_wrap=True)
        return
    table = Table(title=escape(f"Cached scenes in {bundle}"))
    table.add_column("name", no_wrap=True, min_width=max(len(e.name) for e in entries))  # copied into `scenes rm`
    table.add_column("caption", overflow="fold")
    for col in ("values", "created", "status"):
        table.add_column(col)
    for e in entries:
        created = datetime.datetime.fromtimestamp(e.created).strftime("%Y-%m-%d %H:%M")
        status = "current" if cache.is_current(e) else "[yellow]stale (other weights)[/]"
        table.add_row(escape(e.name), escape(e.caption), str(e.shape[-1]), created, status)
    console.print(table)
    if user:
        console.print(escape(user), soft_wrap=True)


@scenes_app.command("rm")
def scenes_rm(
    bundle: Path = typer.Argument(..., help="Bundle folder written by `tr2m-edge export`."),
    name: str = typer.Argument(..., help="Entry name (as listed) or the caption itself."),
) -> None:
    """Remove a cached scene."""
    entry = _open_cache(bundle).remove(name)
    console.print(escape(f"removed {entry.name} ('{entry.normalised}')"))
