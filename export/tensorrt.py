"""TensorRT engines for a bundle being exported (``export --trt``), and their parity.

The builder itself is the runtime's (:mod:`tr2m_edge.runtime.engines`: TensorRT alone, no
PyTorch, so engines can be built on the device that runs them); this module builds the
per-frame engines of a fresh export and checks them against the PyTorch reference with
the runtime's own :class:`~tr2m_edge.runtime.runners.trt.TrtRunner`. The bundle records
the GPU and TensorRT version (``Manifest.tensorrt``, from
:func:`tr2m_edge.system.engine_target`) and :func:`tr2m_edge.bundle.check_engine_compat`
refuses a mismatch with a message saying how to rebuild.

What has run on real hardware is stated in the README's GPU section; on the CPU-only
development and CI machines only the compatibility rule and the manifest logic run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from tr2m_edge.bundle import ComponentFile, component_file
from tr2m_edge.config import ModelConfig
from tr2m_edge.progress import StepProgress
from tr2m_edge.runtime.engines import ENGINE_COMPONENTS, build_engine, engine_profile
from tr2m_edge.system import EngineTarget

log = logging.getLogger(__name__)

def build_engines(steps: StepProgress, tmp: Path, files: list[ComponentFile], onnx_files: dict[str, Path],
                  cfg: ModelConfig, ref: Any, *, fp16: bool, dynamic: bool, frame_size: tuple[int, int] | None,
                  device: EngineTarget, parity: dict[str, Any]) -> dict[str, Any]:
    """TensorRT engines for the per-frame graphs of a bundle being exported, and their parity.

    Appends the engines to ``files`` and the parity report to ``parity["tensorrt"]``;
    returns the manifest's ``tensorrt`` entry (version, GPU, compute capability, builds).
    """
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
