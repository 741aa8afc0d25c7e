"""``torch.onnx.export`` of one component, with either of PyTorch's two exporters.

* ``torchscript``: the TorchScript-tracing exporter (``dynamo=False``), the default.
* ``dynamo``: ``torch.export`` + onnxscript (``dynamo=True``), PyTorch's newer path.

Measured with ``python -m tr2m_edge.export.compare`` (ONNX Runtime 1.32 CPU, torch 2.14,
shared 2-core machine under load from other jobs, so medians are noisy; the sessions run
interleaved): DA-S depth graph at 434x560, 1 thread: TorchScript 1783 ms median /
1639 ms min vs dynamo 2187 / 2106 ms; 2 threads: 3337 / 2808 vs 4205 / 3181 ms. On the
``tiny`` preset the two are within noise (per-frame min 19.6 vs 21.4 ms). TorchScript
also exports 3-10x faster. The issue's earlier measurement agrees (DA-S at 518: 316 vs
478 ms; the dynamo graph lowers attention to extra Where/IsNaN ops).

Opset >= 17 keeps LayerNorm as one ``LayerNormalization`` op (the decomposed
Pow/ReduceMean form overflows in FP16). Antialiased resizing (``--resize antialias``)
needs opset 18, where ``Resize`` gained its ``antialias`` attribute: a graph that holds
one (the preprocess graph) is exported at ``max(opset, 18)`` (:attr:`GraphSpec.min_opset`).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch
from torch import nn

from tr2m_edge.errors import ExportError
from tr2m_edge.export.dynamic import export_patches

log = logging.getLogger(__name__)

EXPORTERS = ("torchscript", "dynamo")
DEFAULT_EXPORTER = "torchscript"  # faster ONNX Runtime graphs, measured by export/compare.py
MIN_OPSET = 17
ANTIALIAS_OPSET = 18  # Resize's antialias attribute


def _antialiased_bilinear(g, x, output_size, align_corners, scale_factors):  # type: ignore[no-untyped-def]
    """ONNX for ``aten::_upsample_bilinear2d_aa`` (``F.interpolate(..., antialias=True)``), which
    the TorchScript exporter lacks: ``Resize`` (linear, antialias=1, exclude_outside=1: PyTorch
    renormalises the filter over in-bounds taps) to ``(N, C) + output_size``."""
    from torch.onnx import symbolic_helper

    if symbolic_helper._maybe_get_const(align_corners, "b"):
        return symbolic_helper._unimplemented("_upsample_bilinear2d_aa", "align_corners=True")
    shape = g.op("Shape", x)
    batch_channels = g.op("Slice", shape, g.op("Constant", value_t=torch.tensor([0])),
                          g.op("Constant", value_t=torch.tensor([2])))
    size = g.op("Concat", batch_channels, g.op("Cast", output_size, to_i=7), axis_i=0)  # 7 = INT64
    empty = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
    return g.op("Resize", x, empty, empty, size, mode_s="linear", antialias_i=1, exclude_outside_i=1,
                coordinate_transformation_mode_s="half_pixel")


torch.onnx.register_custom_op_symbolic("aten::_upsample_bilinear2d_aa", _antialiased_bilinear, ANTIALIAS_OPSET)


@dataclass
class GraphSpec:
    """What to export for one component.

    Attributes:
        component: bundle component name (``depth``, ``head``, ...).
        module: the wrapper from :mod:`tr2m_edge.export.graphs`.
        args: example inputs, in ``input_names`` order.
        input_names / output_names: graph tensor names (the runtime contract).
        dynamic_axes: per tensor name, axis index -> symbolic name (TorchScript style):
            the axes that stay symbolic in this export (batch/height/width with
            ``--dynamic``, the frame size when it is not fixed).
        input_size: (h, w) network input size the graph is traced at; set for graphs
            holding a ViT, whose position embeddings and Depth Anything head
            :func:`export_patches` patches.
        min_opset: the lowest opset the graph's ops need (18 for antialiased resizing).
    """

    component: str
    module: nn.Module
    args: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    input_size: tuple[int, int] | None = None
    min_opset: int = MIN_OPSET


def check_exporter(name: str) -> str:
    """Validate an exporter name (``auto`` means the measured default)."""
    if name == "auto":
        return DEFAULT_EXPORTER
    if name not in EXPORTERS:
        raise ExportError(f"Unknown exporter '{name}'. Available: auto, {', '.join(EXPORTERS)}.")
    return name


def check_opset(opset: int) -> int:
    if int(opset) < MIN_OPSET:
        raise ExportError(
            f"Opset {opset} is too old: LayerNorm would be decomposed into ops that overflow in FP16. "
            f"Use --opset {MIN_OPSET} or newer."
        )
    return int(opset)


def _dynamo_shapes(spec: GraphSpec) -> tuple[dict[int, object] | None, ...]:
    dim = torch.export.Dim
    shapes: list[dict[int, object] | None] = []
    for name in spec.input_names:
        axes = spec.dynamic_axes.get(name)
        shapes.append({axis: dim.DYNAMIC for axis in axes} if axes else None)
    return tuple(shapes)


def export_graph(
    spec: GraphSpec, path: str | Path, *, opset: int = MIN_OPSET, exporter: str = DEFAULT_EXPORTER, dynamic: bool = False
) -> Path:
    """Export one wrapper to a single self-contained ``.onnx`` file.

    Args:
        spec: the module, example inputs and tensor names.
        path: output file.
        opset: ONNX opset (>= 17); raised to ``spec.min_opset`` where the graph needs it.
        exporter: ``torchscript`` or ``dynamo``.
        dynamic: the network input size is dynamic: patch the encoders for it (otherwise
            their position embeddings are baked for ``spec.input_size``).

    Returns:
        The written path. Raises ExportError naming the component on failure.
    """
    path = Path(path)
    exporter = check_exporter(exporter)
    opset = max(check_opset(opset), spec.min_opset)
    module = spec.module.eval()
    axes = spec.dynamic_axes
    try:
        with torch.no_grad(), warnings.catch_warnings(), _patches(spec, dynamic, exporter):
            warnings.simplefilter("ignore")
            if exporter == "torchscript":
                torch.onnx.export(
                    module, spec.args, str(path), dynamo=False, opset_version=opset,
                    input_names=list(spec.input_names), output_names=list(spec.output_names),
                    dynamic_axes=axes or None, do_constant_folding=True,
                )
            else:
                shapes = _dynamo_shapes(spec) if axes else None
                program = torch.onnx.export(
                    module, spec.args, dynamo=True, opset_version=opset,
                    input_names=list(spec.input_names), output_names=list(spec.output_names),
                    dynamic_shapes=shapes, external_data=False, optimize=True,
                )
                program.save(str(path), external_data=False)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - any exporter failure becomes one ExportError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        other = "dynamo" if exporter == "torchscript" else "torchscript"
        raise ExportError(
            f"Exporting '{spec.component}' with the {exporter} exporter failed: {type(exc).__name__}: {first[:300]}. "
            f"Try --exporter {other}."
        ) from exc
    _set_output_shapes(spec, path)
    _check_graph(spec, path)
    return path


def _set_output_shapes(spec: GraphSpec, path: Path) -> None:
    """Write exact output shapes into the graph: static sizes from a PyTorch run of the
    example inputs, the dynamic axes' names elsewhere (the exporters leave generated
    names such as 'Divimage_dim_0' where they cannot infer a size)."""
    with torch.no_grad():
        outs = spec.module(*spec.args)
    outs = outs if isinstance(outs, tuple) else (outs,)
    model = onnx.load(str(path))
    changed = False
    for value, out in zip(model.graph.output, outs):
        axes = spec.dynamic_axes.get(value.name, {})
        dims = value.type.tensor_type.shape.dim
        if len(dims) != out.dim():
            del dims[:]
            for _ in range(out.dim()):
                dims.add()
        for i, dim in enumerate(dims):
            want: int | str = axes.get(i, int(out.shape[i]))
            if isinstance(want, str) and dim.dim_param != want:
                dim.dim_param = want
                changed = True
            elif isinstance(want, int) and (dim.dim_param or dim.dim_value != want):
                dim.dim_value = want
                changed = True
    if changed:
        onnx.save(model, str(path))


def _patches(spec: GraphSpec, dynamic: bool, exporter: str):  # type: ignore[no-untyped-def]
    import contextlib

    if spec.input_size is None:
        return contextlib.nullcontext(0)
    return export_patches(spec.module, spec.input_size, dynamic, exporter)


def _check_graph(spec: GraphSpec, path: Path) -> None:
    """The file loads, passes the ONNX checker and has exactly the contract's tensor names."""
    try:
        model = onnx.load(str(path), load_external_data=False)
        # Files near the 2 GB protobuf limit are checked from disk.
        onnx.checker.check_model(str(path) if path.stat().st_size > 1_800_000_000 else model)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"The exported '{spec.component}' graph {path.name} is not valid ONNX: {exc}") from exc
    inputs = tuple(i.name for i in model.graph.input)
    outputs = tuple(o.name for o in model.graph.output)
    if inputs != tuple(spec.input_names) or outputs != tuple(spec.output_names):
        raise ExportError(
            f"The exported '{spec.component}' graph has inputs {inputs} and outputs {outputs}; "
            f"expected {spec.input_names} -> {spec.output_names}."
        )
    ops = {n.op_type for n in model.graph.node}
    log.debug("%s: %d nodes, ops %s", spec.component, len(model.graph.node), sorted(ops))


def opset_of(path: str | Path) -> int:
    """The default-domain opset an ONNX file declares."""
    model = onnx.load(str(path), load_external_data=False)
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 0
