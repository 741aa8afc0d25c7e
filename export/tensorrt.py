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
built them. The bundle records both (``Manifest.tensorrt``) and
:func:`check_engine_compat` refuses a mismatch with a message saying how to rebuild.

What has run on real hardware is stated in the README's GPU section; on the CPU-only
development and CI machines only :func:`check_engine_compat` and the manifest logic run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tr2m_edge.bundle import EngineTarget, Manifest, check_engine_target
from tr2m_edge.errors import BackendError, ExportError
from tr2m_edge.system import import_tensorrt as _import_tensorrt

log = logging.getLogger(__name__)

ENGINE_COMPONENTS = ("depth", "image_encoder", "head")  # per-frame GPU work; text/bias stay on ONNX Runtime


DeviceInfo = EngineTarget  # the GPU + TensorRT an engine is built for (one definition, in core)


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or BackendError saying why it is unavailable."""
    return _import_tensorrt("or export with --no-trt (the ONNX files run everywhere)")


def tensorrt_major(trt: Any) -> int:
    return int(str(trt.__version__).split(".")[0])


def current_device() -> DeviceInfo | None:
    """This machine's GPU 0 and TensorRT version, or None without TensorRT or a CUDA GPU."""
    try:
        trt = import_tensorrt()
    except BackendError:
        return None
    name, cc = None, None
    try:
        import torch

        if torch.cuda.is_available():
            name = torch.cuda.get_device_name(0)
            cc = "{}.{}".format(*torch.cuda.get_device_capability(0))
    except Exception:  # noqa: BLE001 - fall back to cuda-python
        pass
    if name is None:
        try:
            from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]

            err, props = cudart.cudaGetDeviceProperties(0)
            if int(err) == 0:
                raw = props.name
                name = raw.decode(errors="replace").rstrip("\x00") if isinstance(raw, bytes) else str(raw)
                cc = f"{props.major}.{props.minor}"
        except Exception:  # noqa: BLE001 - no CUDA at all
            return None
    if name is None or cc is None:
        return None
    return DeviceInfo(gpu=name, compute_capability=cc, tensorrt=str(trt.__version__))


def check_engine_compat(manifest: Manifest, device: DeviceInfo | None = None, *, probe: bool = True) -> None:
    """Refuse engines built for another GPU or TensorRT version (core rule: ``check_engine_target``).

    Args:
        manifest: the bundle manifest (does nothing when it holds no engines).
        device: the device to check against; by default this machine's.
        probe: look up this machine when ``device`` is None (False: treat as no GPU).
    """
    if not any(f.format == "engine" for f in manifest.files):
        return
    if device is None and probe:
        device = current_device()
    check_engine_target(manifest.tensorrt or {}, device)


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
    trt = import_tensorrt()
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
    lo_hw = (max(14, (h // 2) // 14 * 14), max(14, (w // 2) // 14 * 14))
    hi_hw = (2 * h, 2 * w)
    sizes = {
        "batch": (1, 1, max_batch),
        "bias_batch": (1, 1, max_batch),
        "height": (lo_hw[0], h, hi_hw[0]),
        "width": (lo_hw[1], w, hi_hw[1]),
        "tokens": ((lo_hw[0] // 14) * (lo_hw[1] // 14), (h // 14) * (w // 14), (hi_hw[0] // 14) * (hi_hw[1] // 14)),
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


def engine_runner(engine_path: Path) -> Any:
    """A feeds -> outputs function running one engine through Polygraphy's TrtRunner.

    Raises BackendError when Polygraphy is not installed (engine parity is then skipped
    by the caller with a note in the manifest).
    """
    try:
        from polygraphy.backend.trt import EngineFromBytes, TrtRunner  # type: ignore[import-not-found]
    except Exception as exc:  # noqa: BLE001
        raise BackendError(f"Polygraphy is needed to run engines for the parity check ({exc}); pip install polygraphy.") from None
    runner = TrtRunner(EngineFromBytes(engine_path.read_bytes()))
    runner.activate()

    def run(feeds: dict[str, Any]) -> dict[str, Any]:
        out = runner.infer(feed_dict=dict(feeds))
        return {k: (v.cpu().numpy() if hasattr(v, "cpu") else v) for k, v in out.items()}

    run.close = runner.deactivate  # type: ignore[attr-defined]
    return run
