"""Building TensorRT engines from ONNX graphs, with TensorRT alone (thin and import-guarded).

TensorRT is imported only inside functions, so this module loads everywhere; it needs no
PyTorch, so engines can be built on the machine that runs them. Two build paths, chosen by
the installed major version:

* TensorRT 10: a weakly typed network parsed from the fp32 ONNX; fp16 sets
  ``BuilderFlag.FP16`` and TensorRT picks per-layer precisions. TF32 is cleared for fp32
  engines so they meet the fp32 parity tolerance.
* TensorRT 11+: ``BuilderFlag.FP16`` no longer exists and every network is strongly
  typed: the precision comes from the ONNX itself, so fp16 engines are parsed from the
  fp16 ONNX (which keeps the fragile ops in fp32).

INT8 engines use explicit quantisation: they are parsed from a Q/DQ graph
(``tr2m-edge calib``, symmetric int8 activations as TensorRT requires), whose scales say
which tensors are int8. TensorRT 10 needs ``BuilderFlag.INT8`` to honour them (plus
``BuilderFlag.FP16`` for the layers the graph leaves float); TensorRT 11+ builds the
network strongly typed from the Q/DQ types, the float layers in fp32.

Engines only run on the GPU model (compute capability) and exact TensorRT version that
built them (:func:`tr2m_edge.bundle.check_engine_compat`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tr2m_edge.config import PATCH_SIZE
from tr2m_edge.errors import BackendError
from tr2m_edge.system import import_tensorrt

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
    int8_onnx_path: Path | None = None,
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
        int8_onnx_path: build an INT8 engine from this Q/DQ graph instead (explicit
            quantisation; with ``fp16`` the float layers may run in fp16 on TensorRT 10).
        profile: input name -> (min, opt, max) shapes for dynamic inputs.
        workspace_gb: builder workspace limit.

    Returns:
        Build facts for the manifest (path used, typing, precision flag).
    """
    trt = import_tensorrt("or run the ONNX files instead (--backend ort-cpu / ort-cuda)")
    major = tensorrt_major(trt)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly_typed = major >= 11
    source = onnx_path
    int8 = int8_onnx_path is not None
    if int8:
        source = int8_onnx_path
    elif fp16 and strongly_typed:
        if fp16_onnx_path is None:
            raise BackendError("TensorRT 11 builds fp16 engines from the fp16 ONNX: export with --fp16.")
        source = fp16_onnx_path
    flags = 0
    if strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT {trt.__version__} cannot parse {source.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    flag_names = []
    if not strongly_typed:
        if int8:
            config.set_flag(trt.BuilderFlag.INT8)
            flag_names.append("BuilderFlag.INT8")
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
            flag_names.append("BuilderFlag.FP16")
        elif not int8 and hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)
    if profile:
        opt_profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in profile.items():
            opt_profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(opt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT {trt.__version__} failed to build an engine from {source.name} (see its log above).")
    engine_path.write_bytes(bytes(serialized))
    return {
        "source": source.name, "strongly_typed": strongly_typed,
        "precision_flag": " + ".join(flag_names) or None,
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
