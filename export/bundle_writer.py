"""``export_bundle``: checkpoint -> self-checking deployment bundle folder.

Steps: build the model; export every component to ONNX (:mod:`.graphs`,
:mod:`.onnx_export`); optional FP16 variants (:mod:`.fp16`); copy the tokenizer
vocabulary; parity against PyTorch (:mod:`.parity`, the export fails beyond tolerance);
optional TensorRT engines (:mod:`.tensorrt`); ``manifest.json`` with every file's sha256;
pre-cached scene captions (:mod:`tr2m_edge.scenes`).

Everything is written into a temporary sibling folder and renamed into place at the end,
so a failed or interrupted export never leaves a half bundle. An existing bundle at the
destination is replaced; any other existing, non-empty folder is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import torch

from tr2m_edge.bundle import MANIFEST, ComponentFile, Manifest, TensorSpec, sha256_file, write_json_atomic
from tr2m_edge.checkpoint import Checkpoint, load_checkpoint
from tr2m_edge.config import ModelConfig, check_input_size
from tr2m_edge.errors import BackendError, ConfigError, ExportError, Tr2mError
from tr2m_edge.system import package_version

if TYPE_CHECKING:
    from tr2m_edge.model.tr2m import TR2M

log = logging.getLogger(__name__)

FP16_COMPONENTS = ("depth", "image_encoder", "head")  # per-frame GPU graphs; text/bias run once per scene
PARITY_CAPTION = "a photo of a warehouse aisle"
TOOLS = ("tr2m-edge", "torch", "transformers", "open_clip_torch", "onnx", "onnxruntime", "onnxscript", "numpy",
         "tensorrt", "polygraphy")


# ------------------------------------------------------------------ sources

def random_head_checkpoint(cfg: ModelConfig, seed: int = 0) -> Checkpoint:
    """A checkpoint with a random head (tests, benchmarks, demos without training).

    The shift head's output bias is set so that B = 4 / max_depth, i.e. depth starts
    near a quarter of the range where D_r is small, rather than at the clip limit.
    """
    from tr2m_edge.model.tr2m import build_head

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = build_head(cfg)
    with torch.no_grad():
        head.output_conv_shift2[2].bias.fill_(math.log(4.0 / (cfg.max_depth * cfg.head.coef_shift)))
    state = {k: v.detach().clone() for k, v in head.state_dict().items()}
    return Checkpoint(config=cfg, head=state, step=0, metrics={}, extra={"random_head_seed": seed})


def load_source(source: "Checkpoint | str | Path | TR2M", input_size: tuple[int, int] | None) -> "TR2M":
    """A TR2M model from a checkpoint path, a Checkpoint, or a model (input size overridable)."""
    from tr2m_edge.model.tr2m import TR2M

    if isinstance(source, TR2M):
        model = source.eval()
        if input_size and tuple(input_size) != tuple(model.cfg.preprocess.input_size):
            model = TR2M(model.cfg.replace(input_size=input_size), model.depth_encoder, model.image_encoder,
                         model.text_encoder, model.head).eval()
        return model
    ckpt = source if isinstance(source, Checkpoint) else load_checkpoint(source)
    cfg = ckpt.config.replace(input_size=input_size) if input_size else ckpt.config
    from tr2m_edge.model.tr2m import build_model

    return build_model(cfg, head_state=ckpt.head).eval()


def state_hash(module: torch.nn.Module) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes, bytes): a content hash of weights."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def parse_frame_size(text: str) -> tuple[int, int]:
    """'HxW' camera frame size (any positive size; the network input is resized from it)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"Cannot read frame size '{text}'; write it as HEIGHTxWIDTH, e.g. 480x640.") from None
    return check_frame_size((h, w))


def check_frame_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or min(int(v) for v in size) < 2:
        raise ConfigError(f"Frame size must be (height, width) with both >= 2; got {tuple(size)}.")
    return int(size[0]), int(size[1])


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
        return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
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


# ------------------------------------------------------------------ progress

class _Steps:
    """A rich progress bar over the export steps (silent when disabled)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.console = Console(stderr=True, highlight=False)
            self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=self.console)
            self.task = self.progress.add_task("export", total=total)

    def __enter__(self) -> "_Steps":
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()

    def set_total(self, total: int) -> None:
        if self.progress:
            self.progress.update(self.task, total=total)

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[None]:
        t0 = time.perf_counter()
        if self.progress:
            self.progress.update(self.task, description=description)
        yield
        dt = time.perf_counter() - t0
        log.info("%s: %.1f s", description, dt)
        if self.progress:
            self.progress.console.print(f"[green]done[/] {description} [dim]({dt:.1f} s)[/]")
            self.progress.advance(self.task)


# ------------------------------------------------------------------ manifest helpers

def _tensor_specs(values: Sequence[onnx.ValueInfoProto]) -> tuple[TensorSpec, ...]:
    specs = []
    for v in values:
        t = v.type.tensor_type
        shape = tuple(d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim)
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)).name
        specs.append(TensorSpec(name=v.name, shape=shape, dtype=dtype))
    return tuple(specs)


def _component_file(root: Path, rel: str, component: str, precision: str, fmt: str = "onnx",
                    io_from: Path | None = None) -> ComponentFile:
    graph = onnx.load(str(io_from or root / rel), load_external_data=False).graph
    return ComponentFile(
        component=component, file=rel, sha256=sha256_file(root / rel), precision=precision, format=fmt,
        inputs=_tensor_specs(graph.input), outputs=_tensor_specs(graph.output),
    )


# ------------------------------------------------------------------ the export

def export_bundle(
    source: "Checkpoint | str | Path | TR2M",
    out_dir: str | Path,
    *,
    fp16: bool = False,
    trt: bool | None = None,
    dynamic: bool = False,
    frame_size: tuple[int, int] | None = None,
    input_size: tuple[int, int] | None = None,
    opset: int = 17,
    exporter: str = "auto",
    scenes: Sequence[str] = (),
    progress: bool = True,
) -> Path:
    """Export a checkpoint to a verified deployment bundle.

    Args:
        source: a :class:`Checkpoint`, a path to ``best.pt``, or a built TR2M model.
        out_dir: bundle folder to create (an existing bundle there is replaced).
        fp16: also write ``*.fp16.onnx`` for depth / image encoder / head (fp32 I/O).
        trt: build TensorRT engines; None = when TensorRT and a GPU are available.
        dynamic: symbolic batch/height/width (multiples of 14) instead of a fixed size.
        frame_size: fixed camera frame (H, W) the head resizes to; None = dynamic
            (the head then takes ``frame_hw``).
        input_size: network input (H, W), multiples of 14; default: the config's.
        opset: ONNX opset (>= 17).
        exporter: ``auto`` (the measured default), ``torchscript`` or ``dynamo``.
        scenes: captions to pre-cache in ``scenes/``.
        progress: show a rich progress display on stderr.

    Returns:
        The bundle folder. Raises a Tr2mError subclass (one-line message) on bad input,
        an unwritable destination, or a failed parity check; nothing is left behind then.
    """
    from tr2m_edge.export.fp16 import convert_to_fp16
    from tr2m_edge.export.graphs import default_frame_size, example_frame, graph_specs
    from tr2m_edge.export.onnx_export import DEFAULT_EXPORTER, check_exporter, check_opset, export_graph, opset_of
    from tr2m_edge.export.parity import check_parity, ort_runner, torch_reference
    from tr2m_edge.scenes import SceneCache, normalise_caption
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
    if trt is not False:
        from tr2m_edge.export.tensorrt import current_device

        device = current_device()
        if trt and device is None:
            raise ExportError("--trt needs TensorRT and a CUDA GPU on this machine; neither was found. Use --no-trt.")
    build_trt = device is not None

    tmp = _prepare_output(out_dir)
    try:
        extra = 2 * fp16 + len(scenes) + (3 if build_trt else 0) + (1 if dynamic else 0)
        with _Steps(7 + extra, progress) as steps:
            with steps.step("build the PyTorch model"):
                model = load_source(source, input_size)
                cfg = model.cfg
                tokenizer = ClipTokenizer()
                tokens = torch.from_numpy(tokenizer([PARITY_CAPTION, "an office with desks"]))
                specs = graph_specs(model, frame_size=frame_size, dynamic=dynamic, example_tokens=tokens)
                steps.set_total(6 + len(specs) + extra)
            files: list[ComponentFile] = []
            fp16_stats: dict[str, Any] = {}
            for spec in specs:
                with steps.step(f"export {spec.component}.onnx ({exporter_name})"):
                    export_graph(spec, tmp / f"{spec.component}.onnx", opset=opset, exporter=exporter_name, dynamic=dynamic)
                    files.append(_component_file(tmp, f"{spec.component}.onnx", spec.component, "fp32"))
            if fp16:
                with steps.step("convert to fp16 (LayerNorm/Softmax/Exp/reciprocal kept fp32)"):
                    for spec in specs:
                        if spec.component in FP16_COMPONENTS:
                            rel = f"{spec.component}.fp16.onnx"
                            fp16_stats[spec.component] = convert_to_fp16(
                                tmp / f"{spec.component}.onnx", tmp / rel, keep_tail_after_exp=spec.component == "head")
                            files.append(_component_file(tmp, rel, spec.component, "fp16"))
            with steps.step("copy the tokenizer vocabulary"):
                (tmp / "tokenizer").mkdir()
                shutil.copyfile(default_vocab_path(), tmp / "tokenizer" / VOCAB_FILE)
                files.append(ComponentFile(component="tokenizer", file=f"tokenizer/{VOCAB_FILE}",
                                           sha256=sha256_file(tmp / "tokenizer" / VOCAB_FILE), precision="none", format="bpe"))

            parity: dict[str, Any] = {}
            frame = example_frame(frame_size or default_frame_size(cfg.preprocess.input_size), seed=1).numpy()
            ids = tokenizer([PARITY_CAPTION])
            with steps.step("run PyTorch on a test frame"):
                ref = torch_reference(model, frame, ids, dynamic_frame=frame_size is None)
            onnx_files = {c: tmp / f"{c}.onnx" for c in (s.component for s in specs)}
            with steps.step("fp32 parity (ONNX Runtime CPU vs PyTorch)"):
                report = check_parity({c: ort_runner(p) for c, p in onnx_files.items()}, ref,
                                      precision="fp32", dynamic_frame=frame_size is None)
                report.check()
                parity["fp32"] = report.to_dict()
            if dynamic:
                with steps.step("fp32 parity at a second input size (dynamic graphs)"):
                    parity["fp32_second_size"] = _second_size_parity(model, onnx_files, ids, frame_size)
            if fp16:
                with steps.step("fp16 parity (ONNX Runtime CPU vs PyTorch)"):
                    runners = {c: ort_runner(tmp / f"{c}.fp16.onnx" if c in fp16_stats else p) for c, p in onnx_files.items()}
                    report = check_parity(runners, ref, precision="fp16", dynamic_frame=frame_size is None)
                    report.check()
                    parity["fp16"] = report.to_dict()
            tensorrt_info = None
            if build_trt:
                tensorrt_info = _build_engines(steps, tmp, files, onnx_files, cfg, ref, fp16, dynamic, frame_size, device, parity)

            with steps.step("write manifest.json"):
                manifest = Manifest(
                    model=cfg, files=files, frame_size=frame_size, dynamic=dynamic,
                    exporter={
                        "name": exporter_name, "opset": opset_of(tmp / "depth.onnx"), "torch": torch.__version__,
                        "choice": "default (measured faster ONNX Runtime graphs)" if exporter == "auto" and exporter_name == DEFAULT_EXPORTER else "requested",
                        "fp16": fp16_stats or None,
                    },
                    tokenizer={**tokenizer.describe(), "file": f"tokenizer/{VOCAB_FILE}"},
                    hashes={"text_encoder": state_hash(model.text_encoder), "head": state_hash(model.head)},
                    tensorrt=tensorrt_info,
                    tools={name: package_version(name) for name in TOOLS},
                    parity=parity,
                )
                write_json_atomic(tmp / MANIFEST, manifest.to_dict())
            if scenes:
                cache = SceneCache(tmp)
                for caption in scenes:
                    with steps.step(f"cache scene '{caption}'"):
                        cache.add(caption)
            with steps.step(f"move the bundle into place: {out_dir}"):
                _move_into_place(tmp, out_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, Tr2mError):
            raise ExportError(f"Writing the bundle to {out_dir} failed: {exc.strerror or exc}.") from exc
        raise
    return out_dir


def _second_size_parity(model: "TR2M", onnx_files: dict[str, Path], ids: np.ndarray,
                        frame_size: tuple[int, int] | None) -> dict[str, Any]:
    """Per-component + chained parity of dynamic graphs at another input size (catches the
    silent 'output stays at the export size' trap)."""
    from tr2m_edge.export.parity import check_parity, ort_runner, torch_reference
    from tr2m_edge.export.graphs import example_frame, default_frame_size
    from tr2m_edge.model.tr2m import TR2M

    h, w = model.cfg.preprocess.input_size
    other = (h + 28, max(28, w - 28))
    alt = TR2M(model.cfg.replace(input_size=other), model.depth_encoder, model.image_encoder, model.text_encoder,
               model.head).eval()
    frame = example_frame(frame_size or default_frame_size(other), seed=2).numpy()
    ref = torch_reference(alt, frame, ids, dynamic_frame=frame_size is None)
    runners = {c: ort_runner(p) for c, p in onnx_files.items() if c != "preprocess"}
    report = check_parity(runners, ref, precision="fp32", dynamic_frame=frame_size is None)
    report.check()
    return {"input_size": list(other), **report.to_dict()}


def _build_engines(steps: _Steps, tmp: Path, files: list[ComponentFile], onnx_files: dict[str, Path], cfg: ModelConfig,
                   ref: Any, fp16: bool, dynamic: bool, frame_size: tuple[int, int] | None, device: Any,
                   parity: dict[str, Any]) -> dict[str, Any]:
    """TensorRT engines for the per-frame graphs + their parity (GPU machines only)."""
    from tr2m_edge.export.parity import check_parity, ort_runner
    from tr2m_edge.export.tensorrt import ENGINE_COMPONENTS, build_engine, engine_profile, engine_runner

    precision = "fp16" if fp16 else "fp32"
    info: dict[str, Any] = {"version": device.tensorrt, "gpu": device.gpu, "compute_capability": device.compute_capability,
                            "precision": precision, "engines": {}, "skipped": {}}
    built: dict[str, Path] = {}
    with steps.step(f"build TensorRT {device.tensorrt} {precision} engines on {device.gpu}"):
        for comp in ENGINE_COMPONENTS:
            if comp not in onnx_files:
                continue
            if comp == "head" and frame_size is None:
                info["skipped"]["head"] = "dynamic frame size (frame_hw shape input): export with --frame-size for a head engine"
                continue
            entry = next(f for f in files if f.component == comp and f.precision == "fp32")
            shapes = {t.name: t.shape for t in entry.inputs}
            rel = f"{comp}.{precision}.engine"
            fp16_path = tmp / f"{comp}.fp16.onnx"
            info["engines"][comp] = build_engine(
                onnx_files[comp], tmp / rel, fp16=fp16, fp16_onnx_path=fp16_path if fp16_path.is_file() else None,
                profile=engine_profile(shapes, cfg.preprocess.input_size) if dynamic else None,
            )
            files.append(_component_file(tmp, rel, comp, precision, fmt="engine", io_from=onnx_files[comp]))
            built[comp] = tmp / rel
    with steps.step("TensorRT parity vs PyTorch"):
        try:
            runners = {c: (engine_runner(built[c]) if c in built else ort_runner(p)) for c, p in onnx_files.items()}
        except BackendError as exc:
            parity["tensorrt"] = {"skipped": str(exc)}
        else:
            report = check_parity(runners, ref, precision=precision, backend=f"tensorrt-{device.tensorrt}",
                                  dynamic_frame=frame_size is None)
            for run in runners.values():
                getattr(run, "close", lambda: None)()
            report.check()
            parity["tensorrt"] = report.to_dict()
    with steps.step("record the engine device"):
        info["built"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return info
