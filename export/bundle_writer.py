"""``export_bundle``: checkpoint -> self-checking deployment bundle folder.

Steps: build the model; export every component to ONNX (:mod:`.graphs`,
:mod:`.onnx_export`); optional FP16 variants (:mod:`.fp16`); copy the tokenizer
vocabulary; parity against PyTorch (:mod:`.parity`, the export fails beyond tolerance);
``manifest.json`` with every file's sha256; optional TensorRT engines (:mod:`.tensorrt`:
the runtime's ``build`` step on the written bundle, plus parity against PyTorch);
pre-cached captions (:mod:`tr2m_edge.caption_cache`).

Everything is written into a temporary sibling folder and renamed into place at the end,
so a failed or interrupted export never leaves a half bundle. An existing bundle at the
destination is replaced; any other existing, non-empty folder is refused.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tr2m_edge.bundle import CHECK_CAPTION, MANIFEST, ComponentFile, Manifest, component_file, sha256_file
from tr2m_edge.bundle import write_check_inputs, write_manifest
from tr2m_edge.checkpoint import Checkpoint
from tr2m_edge.config import check_frame_size, check_input_size
from tr2m_edge.errors import ExportError, Tr2mError
from tr2m_edge.fileio import remove_stale_partials
from tr2m_edge.progress import StepProgress
from tr2m_edge.runtime.build import build_step_count
from tr2m_edge.system import engine_target, package_version

if TYPE_CHECKING:
    from tr2m_edge.model.tr2m import TR2M

log = logging.getLogger(__name__)

FP16_COMPONENTS = ("depth", "image_encoder", "head")  # per-frame GPU graphs; text/bias run once per scene
PARITY_CAPTION = CHECK_CAPTION  # parity inputs are stored in the bundle (check.npz)
TOOLS = ("tr2m-edge", "torch", "transformers", "open_clip_torch", "onnx", "onnxruntime", "onnxscript", "numpy",
         "tensorrt", "polygraphy")


# ------------------------------------------------------------------ output folder

def _prepare_output(out_dir: Path) -> Path:
    """Check the destination and create the temporary export folder next to it."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ExportError(f"Output {out_dir} exists and is not a folder; choose another path with -o.")
        if any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
            raise ExportError(
                f"Output folder {out_dir} is not empty and is not a tr2m-edge bundle; refusing to overwrite it. "
                "Choose another path with -o or empty it."
            )
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        removed = remove_stale_partials(out_dir.parent, f".{out_dir.name}.partial-")  # left by killed exports
        if removed:
            log.info("removed %d partial export folder(s) of killed exports next to %s", removed, out_dir)
        return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-{os.getpid()}-", dir=out_dir.parent))
    except OSError as exc:
        raise ExportError(f"Cannot write the bundle to {out_dir}: {exc.strerror or exc}. Choose a writable folder with -o.") from None


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    trash = None
    if out_dir.exists():
        trash = out_dir.parent / f".{out_dir.name}.old-{int(time.time() * 1e3)}"
        out_dir.rename(trash)
    try:
        tmp.rename(out_dir)
    except OSError:
        if trash is not None:
            trash.rename(out_dir)
        raise
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


# ------------------------------------------------------------------ the export

def export_bundle(
    source: "Checkpoint | str | Path | TR2M",
    out_dir: str | Path,
    *,
    fp16: bool = False,
    trt: bool | None = None,
    device_id: int | None = 0,
    dynamic: bool = False,
    frame_size: tuple[int, int] | None = None,
    input_size: tuple[int, int] | None = None,
    opset: int = 17,
    exporter: str = "auto",
    scenes: Sequence[str] = (),
    progress: bool = True,
    text_fp16: bool | None = None,
    resize: str | None = None,
    min_depth: float | None = None,
    max_depth: float | None = None,
) -> Path:
    """Export a checkpoint to a verified deployment bundle.

    Args:
        source: a :class:`Checkpoint`, a path to ``best.pt``, or a built TR2M model.
        out_dir: bundle folder to create (an existing bundle there is replaced).
        fp16: also write ``*.fp16.onnx`` for depth / image encoder / head (fp32 I/O).
        trt: build TensorRT engines; None = when TensorRT and a GPU are available.
        device_id: the CUDA device engines are built for (``--device``); None: the CPU only, no engines.
        dynamic: symbolic batch/height/width (multiples of 14) instead of a fixed size.
        frame_size: fixed camera frame (H, W) the head resizes to; None = dynamic
            (the head then takes ``frame_hw``).
        input_size: network input (H, W), multiples of 14; default: the config's.
        opset: ONNX opset (>= 17).
        exporter: ``auto`` (the measured default), ``torchscript`` or ``dynamo``.
        scenes: captions to pre-cache in ``scenes/``.
        progress: show a rich progress display on stderr.
        text_fp16: True: caption embeddings in fp16 as the released code computes them on
            CUDA (``text_encoder.fp16.onnx``; fp16 tower, fp32 LayerNorm); False: fp32;
            None: the config's ``text.precision``.
        resize: preprocess resize, ``bilinear`` or ``antialias`` (default: the config's).
        min_depth / max_depth: output clip range in metres (default: the config's).

    Returns:
        The bundle folder. Raises a Tr2mError subclass (one-line message) on bad input,
        an unwritable destination, or a failed parity check; nothing is left behind then.
    """
    from tr2m_edge.caption_cache import normalise_caption
    from tr2m_edge.export.fp16 import convert_to_fp16
    from tr2m_edge.export.graphs import default_frame_size, example_frame, graph_specs
    from tr2m_edge.export.onnx_export import DEFAULT_EXPORTER, check_exporter, check_opset, export_graph, opset_of
    from tr2m_edge.export.parity import check_files, second_size_parity, torch_reference
    from tr2m_edge.export.sources import load_source, state_hash, with_export_settings
    from tr2m_edge.runtime.scene_bias import caption_cache
    from tr2m_edge.tokenizer import VOCAB_FILE, ClipTokenizer, default_vocab_path

    out_dir = Path(out_dir)
    exporter_name = check_exporter(exporter)
    opset = check_opset(opset)
    if input_size is not None:
        input_size = check_input_size(tuple(input_size))
    if frame_size is not None:
        frame_size = check_frame_size(frame_size)
    scenes = list(scenes)
    for caption in scenes:
        normalise_caption(caption)  # InputError for an empty caption, before any work
    device = None
    if trt and device_id is None:
        raise ExportError("--trt builds engines for a GPU, but --device cpu asks for none: drop one of the two.")
    if trt is not False and device_id is not None:
        device = engine_target(device_id)
        if trt and device is None:
            raise ExportError(f"--trt needs TensorRT and CUDA GPU {device_id} on this machine; they were not found "
                              "(tr2m-edge info says what is there). Use --no-trt, and `tr2m-edge build` on the target.")
    build_trt = device is not None

    tmp = _prepare_output(out_dir)
    try:
        extra = 2 * fp16 + len(scenes) + (1 if dynamic else 0)
        with StepProgress(7 + extra, progress, "export") as steps:
            with steps.step("build the PyTorch model"):
                model = load_source(source, input_size)
                model = with_export_settings(model, resize=resize, min_depth=min_depth, max_depth=max_depth,
                                             text_precision=None if text_fp16 is None else ("fp16" if text_fp16 else "fp32"))
                cfg = model.cfg
                tokenizer = ClipTokenizer()
                tokens = torch.from_numpy(tokenizer([PARITY_CAPTION, "an office with desks"]))
                specs = graph_specs(model, frame_size=frame_size, dynamic=dynamic, example_tokens=tokens)
                if build_trt:
                    extra += build_step_count((spec.component for spec in specs), frame_size)
                steps.set_total(6 + len(specs) + extra)
            files: list[ComponentFile] = []
            fp16_stats: dict[str, Any] = {}
            onnx_files: dict[str, Path] = {}
            for spec in specs:
                with steps.step(f"export {spec.component}.onnx ({exporter_name})"):
                    path = export_graph(spec, tmp / f"{spec.component}.onnx", opset=opset, exporter=exporter_name,
                                        dynamic=dynamic)
                    precision = "fp32"
                    if spec.component == "text_encoder" and cfg.text.precision == "fp16":
                        fp16_stats["text_encoder"] = convert_to_fp16(path, tmp / "text_encoder.fp16.onnx")
                        path.unlink()
                        path, precision = tmp / "text_encoder.fp16.onnx", "fp16"
                    files.append(component_file(tmp, path.name, spec.component, precision))
                    onnx_files[spec.component] = path
            if fp16:
                with steps.step("convert to fp16 (LayerNorm/Softmax/Exp/reciprocal kept fp32)"):
                    for spec in specs:
                        if spec.component in FP16_COMPONENTS:
                            rel = f"{spec.component}.fp16.onnx"
                            fp16_stats[spec.component] = convert_to_fp16(
                                tmp / f"{spec.component}.onnx", tmp / rel, keep_tail_after_exp=spec.component == "head")
                            files.append(component_file(tmp, rel, spec.component, "fp16"))
            with steps.step("copy the tokenizer vocabulary"):
                (tmp / "tokenizer").mkdir()
                shutil.copyfile(default_vocab_path(), tmp / "tokenizer" / VOCAB_FILE)
                files.append(ComponentFile(component="tokenizer", file=f"tokenizer/{VOCAB_FILE}",
                                           sha256=sha256_file(tmp / "tokenizer" / VOCAB_FILE), precision="none", format="bpe"))

            parity: dict[str, Any] = {}
            frame = example_frame(frame_size or default_frame_size(cfg.preprocess.input_size), seed=1).numpy()
            ids = tokenizer([PARITY_CAPTION])
            files.append(write_check_inputs(tmp, frame, ids, PARITY_CAPTION))  # `build` re-checks engines on them
            with steps.step("run PyTorch on a test frame"):
                ref = torch_reference(model, frame, ids, dynamic_frame=frame_size is None)
            with steps.step("fp32 parity (ONNX Runtime CPU vs PyTorch)"):
                parity["fp32"] = check_files(onnx_files, ref, cfg, precision="fp32").to_dict()
            if dynamic:
                with steps.step("fp32 parity at a second input size (dynamic graphs)"):
                    parity["fp32_second_size"] = second_size_parity(model, onnx_files, ids, frame_size)
            if fp16:
                with steps.step("fp16 parity (ONNX Runtime CPU vs PyTorch)"):
                    fp16_files = {c: tmp / f"{c}.fp16.onnx" if c in fp16_stats else p for c, p in onnx_files.items()}
                    parity["fp16"] = check_files(fp16_files, ref, cfg, precision="fp16").to_dict()

            with steps.step("write manifest.json"):
                manifest = Manifest(
                    model=cfg, files=files, frame_size=frame_size, dynamic=dynamic,
                    exporter={
                        "name": exporter_name, "opset": opset_of(tmp / "depth.onnx"), "torch": torch.__version__,
                        "opsets": {c: opset_of(p) for c, p in onnx_files.items()},
                        "text_precision": cfg.text.precision, "resize": cfg.preprocess.resize,
                        "choice": "default (measured faster ONNX Runtime graphs)" if exporter == "auto" and exporter_name == DEFAULT_EXPORTER else "requested",
                        "fp16": fp16_stats or None,
                    },
                    tokenizer={**tokenizer.describe(), "file": f"tokenizer/{VOCAB_FILE}"},
                    hashes={"text_encoder": state_hash(model.text_encoder), "head": state_hash(model.head)},
                    tensorrt=None,  # the build step below fills it in
                    tools={name: package_version(name) for name in TOOLS},
                    parity=parity,
                )
                write_manifest(tmp, manifest)
            if build_trt:
                from tr2m_edge.export.tensorrt import build_engines

                build_engines(steps, tmp, cfg, ref, fp16=fp16, device=device, device_id=device_id or 0)
            if scenes:
                cache = caption_cache(tmp)
                try:
                    for caption in scenes:
                        with steps.step(f"cache scene '{caption}'"):
                            cache.add(caption)
                finally:
                    cache.close()
            with steps.step(f"move the bundle into place: {out_dir}"):
                _move_into_place(tmp, out_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, Tr2mError):
            raise ExportError(f"Writing the bundle to {out_dir} failed: {exc.strerror or exc}.") from exc
        raise
    return out_dir
