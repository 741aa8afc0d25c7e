"""TensorRT engines from the exported ONNX graphs (thin and import-guarded).

TensorRT is imported only inside functions, so this module loads everywhere. Two build
paths, chosen by the installed major version:

* TensorRT 10: a weakly typed network parsed from the fp32 ONNX; ``--fp16`` sets
  ``BuilderFlag.FP16`` and TensorRT picks per-layer precisions. TF32 is cleared for fp32
  engines so they meet the fp32 parity tolerance.
* TensorRT 11+: ``BuilderFlag.FP16`` no longer exists and every network is strongly
  typed: the precision comes from the ONNX itself, so fp16 engines are parsed from the
  fp16 ONNX (which keeps the fragile ops in fp32, see :mod:`tr2m_edge.export.fp16`).

Engines only run on the GPU model (compute capability) and exact TensorRT version that
built them. The bundle records both (``Manifest.tensorrt``, from
:func:`tr2m_edge.system.engine_target`) and :func:`tr2m_edge.bundle.check_engine_compat`
refuses a mismatch with a message saying how to rebuild. The parity of the built engines
is checked with the runtime's own :class:`~tr2m_edge.runtime.runners.trt.TrtRunner`.

What has run on real hardware is stated in the README's GPU section; on the CPU-only
development and CI machines only the compatibility rule and the manifest logic run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from tr2m_edge.bundle import ComponentFile
from tr2m_edge.config import PATCH_SIZE, ModelConfig
from tr2m_edge.errors import ExportError
from tr2m_edge.progress import StepProgress
from tr2m_edge.system import EngineTarget, import_tensorrt

log = logging.getLogger(__name__)

ENGINE_COMPONENTS = ("depth", "image_encoder", "head")  # per-frame GPU work; text/bias stay on ONNX Runtime


def tensorrt_major(trt: Any) -> int:
    return int(str(trt.__version__).split(".")[0])


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    *,
    fp16: bool,
    fp16_onnx_path: Path | None = None,
    profile: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] | None = None,
    workspace_gb: float = 4.0,
) -> dict[str, Any]:
    """Build and save one serialized engine.

    Args:
        onnx_path: fp32 ONNX file.
        engine_path: where to write the engine.
        fp16: build an fp16 engine (TensorRT 10: BuilderFlag.FP16 on the fp32 ONNX;
            TensorRT 11+: strongly typed network from ``fp16_onnx_path``).
        fp16_onnx_path: the fp16 ONNX (needed for fp16 on TensorRT 11+).
        profile: input name -> (min, opt, max) shapes for dynamic inputs.
        workspace_gb: builder workspace limit.

    Returns:
        Build facts for the manifest (path used, typing, precision flag).
    """
    trt = import_tensorrt("or export with --no-trt (the ONNX files run everywhere)")
    major = tensorrt_major(trt)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly_typed = major >= 11
    source = onnx_path
    if fp16 and strongly_typed:
        if fp16_onnx_path is None:
            raise ExportError("TensorRT 11 builds fp16 engines from the fp16 ONNX: export with --fp16.")
        source = fp16_onnx_path
    flags = 0
    if strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT {trt.__version__} cannot parse {source.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if not strongly_typed:
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        elif hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)
    if profile:
        opt_profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in profile.items():
            opt_profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(opt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT {trt.__version__} failed to build an engine from {source.name} (see its log above).")
    engine_path.write_bytes(bytes(serialized))
    return {
        "source": source.name, "strongly_typed": strongly_typed,
        "precision_flag": "BuilderFlag.FP16" if fp16 and not strongly_typed else None,
    }


def engine_profile(inputs: dict[str, tuple[int | str, ...]], input_size: tuple[int, int],
                   max_batch: int = 4) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """Min/opt/max shapes for the symbolic axes of a dynamic graph.

    Batch 1..``max_batch`` (opt 1); height and width from half to twice the bundle's input
    size (opt: the input size), multiples of 14; token counts follow the patch grid.
    """
    h, w = input_size
    p = PATCH_SIZE
    lo_hw = (max(p, (h // 2) // p * p), max(p, (w // 2) // p * p))
    hi_hw = (2 * h, 2 * w)
    sizes = {
        "batch": (1, 1, max_batch),
        "bias_batch": (1, 1, max_batch),
        "height": (lo_hw[0], h, hi_hw[0]),
        "width": (lo_hw[1], w, hi_hw[1]),
        "tokens": ((lo_hw[0] // p) * (lo_hw[1] // p), (h // p) * (w // p), (hi_hw[0] // p) * (hi_hw[1] // p)),
    }
    out = {}
    for name, shape in inputs.items():
        if all(isinstance(d, int) for d in shape):
            continue
        triple = [[], [], []]
        for d in shape:
            vals = (d, d, d) if isinstance(d, int) else sizes[str(d)]
            for k in range(3):
                triple[k].append(int(vals[k]))
        out[name] = tuple(tuple(t) for t in triple)  # type: ignore[assignment]
    return out  # type: ignore[return-value]


def build_engines(steps: StepProgress, tmp: Path, files: list[ComponentFile], onnx_files: dict[str, Path],
                  cfg: ModelConfig, ref: Any, *, fp16: bool, dynamic: bool, frame_size: tuple[int, int] | None,
                  device: EngineTarget, parity: dict[str, Any]) -> dict[str, Any]:
    """TensorRT engines for the per-frame graphs of a bundle being exported, and their parity.

    Appends the engines to ``files`` and the parity report to ``parity["tensorrt"]``;
    returns the manifest's ``tensorrt`` entry (version, GPU, compute capability, builds).
    """
    from tr2m_edge.export.onnx_export import component_file
    from tr2m_edge.export.parity import onnx_runners
    from tr2m_edge.runtime.comparator import check_parity
    from tr2m_edge.runtime.runners.base import activated
    from tr2m_edge.runtime.runners.trt import TrtRunner

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
            files.append(component_file(tmp, rel, comp, precision, fmt="engine", io_from=onnx_files[comp]))
            built[comp] = tmp / rel
    with steps.step("TensorRT parity vs PyTorch"):
        runners = {**onnx_runners({c: p for c, p in onnx_files.items() if c not in built}),
                   **{c: TrtRunner(p, name=c) for c, p in built.items()}}
        with activated(runners) as active:
            report = check_parity(active, ref, cfg, precision=precision, backend=f"tensorrt-{device.tensorrt}")
        report.check()
        parity["tensorrt"] = report.to_dict()
    info["built"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return info
