"""INT8 TensorRT engines from Q/DQ graphs (explicit quantisation), where TensorRT and a GPU are.

TensorRT accepts only symmetric int8 Q/DQ (zero point 0), while ONNX Runtime's fastest
CPU kernels take asymmetric uint8 activations, so the engines come from a second Q/DQ
graph per component: the same calibration feeds and node choice, symmetric activations
(:class:`~tr2m_edge.calib.quantize.QuantSettings` ``symmetric=True``). The builder is the
runtime's (:func:`tr2m_edge.runtime.engines.build_engine`: TensorRT 10 ``BuilderFlag.INT8``
+ ``FP16``, TensorRT 11 strongly typed); the engines then pass the same accuracy gate as
the ONNX graphs, run by the runtime's :class:`~tr2m_edge.runtime.runners.trt.TrtRunner`.
Engines that fail it are not installed (the manifest says why).

Never executed on the machines this project has (no TensorRT there): written against the
documented TensorRT 10/11 Python API, like the fp16 engine path it shares.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tr2m_edge.bundle import Bundle, check_engine_target
from tr2m_edge.calib.gate import GateReport
from tr2m_edge.calib.quantize import QuantSettings
from tr2m_edge.calib.variant import int8_file
from tr2m_edge.errors import BackendError
from tr2m_edge.runtime.engines import ENGINE_COMPONENTS, build_engine, engine_profile
from tr2m_edge.runtime.runners.base import Runner

log = logging.getLogger(__name__)


def build_int8_engines(bundle: Bundle, staging: Path, components: Sequence[str], settings: QuantSettings,
                       quantize: Callable[[str, Path], dict[str, Any]],
                       gate: Callable[[dict[str, Runner]], GateReport]) -> tuple[dict[str, Any], dict[str, Path]]:
    """Build, gate and stage INT8 engines for ``components``.

    Args:
        bundle: the bundle being calibrated.
        staging: its staging folder (engines and their Q/DQ graphs are written there).
        components: the calibrated components (those TensorRT runs get engines).
        settings: the symmetric quantisation settings (recorded).
        quantize: (component, destination) -> writes its symmetric Q/DQ graph, returns its stats.
        gate: candidate runners -> the accuracy gate's report against the fp32 graphs.

    Returns:
        The manifest's new ``tensorrt`` entry (with an ``int8`` section) and the staged
        engines to install (none when they fail the gate).
    """
    from tr2m_edge.runtime.runners.trt import TrtRunner
    from tr2m_edge.system import engine_target

    here = engine_target()
    if here is None:
        raise BackendError("Building INT8 engines needs TensorRT and a CUDA GPU; neither was found.")
    manifest = bundle.manifest
    if any(f.format == "engine" for f in manifest.files):
        check_engine_target(manifest.tensorrt, here)  # one device per bundle: refuse to mix engine targets
    info = dict(manifest.tensorrt or {"version": here.tensorrt, "gpu": here.gpu,
                                      "compute_capability": here.compute_capability, "engines": {}})
    section: dict[str, Any] = {"quantization": settings.describe(), "engines": {}, "skipped": {}, "graphs": {}}
    built: dict[str, Path] = {}
    for comp in components:
        if comp not in ENGINE_COMPONENTS:
            continue
        if comp == "head" and manifest.frame_size is None:
            section["skipped"][comp] = "dynamic frame size (frame_hw shape input): export with --frame-size"
            continue
        qdq = staging / f"{comp}.int8.symmetric.onnx"
        section["graphs"][comp] = quantize(comp, qdq)
        entry = bundle.require(comp, "fp32")
        profile = engine_profile({t.name: t.shape for t in entry.inputs}, bundle.config.preprocess.input_size)
        section["engines"][comp] = build_engine(bundle.path(entry), staging / int8_file(comp, "engine"), fp16=True,
                                                int8_onnx_path=qdq, profile=profile if manifest.dynamic else None)
        built[comp] = staging / int8_file(comp, "engine")
    if built:
        report = gate({c: TrtRunner(p, name=f"{c}-int8-trt") for c, p in built.items()})
        section["gate"] = report.to_dict()
        section["installed"] = report.usable
        if not report.usable:
            log.warning("INT8 TensorRT engines fail the accuracy gate (%s); not installed", report.describe())
            built = {}
    info["int8"] = section
    return info, built
