"""INT8 Q/DQ graphs: ``onnxruntime.quantization.quantize_static`` on a bundle's fp32 graphs.

Explicit quantisation (``QuantFormat.QDQ``): QuantizeLinear/DequantizeLinear pairs around
the quantised nodes, int8 weights per output channel, activation ranges from the
calibration feeds (MinMax, Entropy or Percentile). ONNX Runtime fuses the pairs into
integer kernels (QLinearConv, QGemm, MatMulIntegerToFloat); TensorRT reads the same
pairs as explicit precision.

Before quantising, a graph is pre-processed with ``quant_pre_process`` (symbolic shape
inference and ONNX Runtime's basic optimisations: the TorchScript exporter's Identity
weights become initializers, MatMul + Add become Gemm), so the quantiser sees weights as
constants.

Which nodes are quantised:

* op types from ``ops`` (default :data:`DEFAULT_OPS`, chosen by measurement with
  :mod:`tr2m_edge.calib.profile`; the reason is :data:`DEFAULT_OPS_REASON` and goes into
  the manifest);
* never LayerNormalization or Softmax unless named in ``ops`` (:data:`FLOAT_OPS`);
* never the head's tail: the ``Exp`` nodes and everything after them (A, B,
  ``1 / (A D_r + B)``, the resize to frame size and the clip), found with
  :func:`tr2m_edge.onnx_graph.tail_after` exactly as the FP16 converter finds it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import onnx

from tr2m_edge.errors import CalibrationError, ConfigError
from tr2m_edge.onnx_graph import name_nodes, tail_after

log = logging.getLogger(__name__)

METHODS = ("minmax", "entropy", "percentile")
QUANTIZABLE_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose", "LayerNormalization", "Softmax", "Add", "Mul",
                   "Relu", "Resize", "Sigmoid")
DEFAULT_OPS = ("Conv", "Gemm", "MatMul")
DEFAULT_OPS_REASON = (
    "measured with ONNX Runtime's profiler on the 2-core AVX2 CPU (edge preset, 434x560; "
    "`python -m tr2m_edge.calib.profile`, docs/measurements/int8_edge_cpu.md): the depth model with "
    "Conv, Gemm and MatMul quantised ran 1.30x fp32, Conv and Gemm 1.15x, Gemm alone 1.20x (the "
    "attention MatMuls gain only with the rest); quantised Softmax (QLinearSoftmax) is ~4x slower than "
    "float Softmax. Where this fails the accuracy gate, --ops Gemm is the accurate choice"
)
# Where DEFAULT_OPS fail the accuracy gate, calib (without --ops) tries these: measured on the edge
# preset's random weights, Conv/Gemm/MatMul gave 2.58 % metric-depth drift and Gemm alone 1.03 % (1.17x the
# fp32 depth model, docs/measurements/int8_edge_cpu.md). A subset of DEFAULT_OPS, so their ranges serve it.
FALLBACK_OPS = ("Gemm",)
FLOAT_OPS = ("LayerNormalization", "Softmax")  # float unless named in ops
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
CALIBRATION_CHUNK = 4  # feeds per calibrator pass
# Weighted layers before a component's outputs that stay float. The depth model keeps its
# whole DPT output head (conv1 -> resize -> conv2 -> ReLU -> conv3 -> ReLU): its relative
# depth is a ReLU of a difference, which amplifies the decoder's rounding. Measured on the
# tiny bundle (32 + 8 synthetic frames, only the depth model quantised): metric depth
# AbsRel 2.16 % with only conv3 float, 1.48 % with the DPT head float (the ViT backbone
# contributes almost nothing: 2.13 % with it float). The head's scale/shift convolutions
# quantise well (0.1 % error on A and B) and are most of its time, so it keeps only the
# last 1x1 convolutions float.
OUTPUT_FLOAT_LAYERS = {"depth": 3}
# Outputs of these stay float: ONNX Runtime then fuses DQ -> MatMul/Gemm into integer kernels with a float
# output (MatMulIntegerToFloat, QGemm) instead of adding a Q/DQ pair after every linear layer.
FLOAT_OUTPUT_OPS = ("MatMul", "Gemm")


@dataclass(frozen=True)
class QuantSettings:
    """How a graph is quantised (recorded in the manifest).

    Attributes:
        ops: op types to quantise.
        method: ``minmax``, ``entropy`` or ``percentile`` activation calibration.
        per_channel: int8 weights per output channel (else per tensor).
        symmetric: symmetric int8 activations (zero point 0, what TensorRT requires)
            instead of asymmetric uint8 (ONNX Runtime's fastest CPU kernels, U8S8).
        reduce_range: 7-bit weights. ONNX Runtime's U8S8 kernels on x86 CPUs without VNNI
            (AVX2, AVX-512F) multiply with VPMADDUBSW, which saturates its int16 pair sums
            for 8-bit weights; measured on the tiny bundle's depth model (AVX2): relative
            depth mean |diff| 1.51 with 8-bit weights, 0.27 with 7-bit (the unfused Q/DQ
            graph, which cannot saturate, gives 0.24).
    """

    ops: tuple[str, ...] = DEFAULT_OPS
    method: str = "minmax"
    per_channel: bool = True
    symmetric: bool = False
    reduce_range: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"Unknown calibration method '{self.method}'. Available: {', '.join(METHODS)}.")
        unknown = [op for op in self.ops if op not in QUANTIZABLE_OPS]
        if unknown or not self.ops:
            raise ConfigError(f"Cannot quantise op type(s) {unknown or 'none'}. Available: {', '.join(QUANTIZABLE_OPS)}.")

    def describe(self) -> dict[str, Any]:
        return {"ops": list(self.ops), "method": self.method, "per_channel": self.per_channel,
                "activations": "int8 symmetric" if self.symmetric else "uint8 asymmetric",
                "weights": f"int8 symmetric ({7 if self.reduce_range else 8}-bit range)",
                "format": "QDQ"}


def parse_ops(text: str | None) -> tuple[str, ...]:
    """``"Conv,Gemm"`` -> ("Conv", "Gemm"); None or empty: the measured default."""
    if not text:
        return DEFAULT_OPS
    by_lower = {op.lower(): op for op in QUANTIZABLE_OPS}
    ops = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if item.lower() not in by_lower:
            raise ConfigError(f"Cannot quantise op type '{item}'. Available: {', '.join(QUANTIZABLE_OPS)}.")
        ops.append(by_lower[item.lower()])
    return tuple(dict.fromkeys(ops))


def output_layers(graph: onnx.GraphProto, layers: int = 1) -> list[str]:
    """The last ``layers`` weighted nodes (Conv, Gemm, MatMul, ConvTranspose) before each graph output.

    Walks back from every graph output through nodes with one non-constant input (ReLU,
    Squeeze, Resize, Exp, a scale by a constant, ...), collecting weighted nodes until
    ``layers`` of them are found on the way, and stops early at a node that joins two
    computed values (a residual Add). These layers write the network's answer (the depth
    model's relative depth, the head's scale and shift exponents), so they stay float.
    """
    constants = {t.name for t in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    producer = {o: n for n in graph.node for o in n.output}
    found: set[str] = set()
    stack = [(o.name, layers) for o in graph.output]
    seen: set[tuple[str, int]] = set()
    while stack:
        tensor, left = stack.pop()
        node = producer.get(tensor)
        if node is None or (node.name, left) in seen:
            continue
        seen.add((node.name, left))
        if node.op_type in WEIGHTED_OPS:
            found.add(node.name)
            left -= 1
            if left == 0:
                continue
        computed = [i for i in node.input if i and i not in constants and i in producer]
        if len(computed) == 1:
            stack.append((computed[0], left))
    return sorted(found)


def select_nodes(graph: onnx.GraphProto, ops: Sequence[str], output_float: int = 1) -> tuple[list[str], dict[str, int]]:
    """The names of the nodes to quantise, and counts of what stays float and why.

    ``output_float``: how many weighted layers before each graph output stay float
    (:func:`output_layers`; per component: :data:`OUTPUT_FLOAT_LAYERS`).
    """
    tail = set(tail_after(graph, "Exp"))
    last = set(output_layers(graph, output_float))
    chosen = [n.name for n in graph.node if n.op_type in ops and n.name not in tail and n.name not in last]
    float_types = Counter(n.op_type for n in graph.node if n.op_type in FLOAT_OPS and n.op_type not in ops)
    kept = {"tail_after_exp": len(tail), "output_layers": len(last),
            **{f"{op} (kept float)": c for op, c in sorted(float_types.items())}}
    return chosen, kept


@contextlib.contextmanager
def _root_log_level(level: int) -> Iterator[None]:
    root = logging.getLogger()
    previous = root.level
    root.setLevel(max(level, previous))
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print their progress
            yield
    finally:
        root.setLevel(previous)


def preprocess_graph(src: Path, dst: Path) -> None:
    """``quant_pre_process``: shape inference + ONNX Runtime basic optimisations, written to ``dst``."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    big = src.stat().st_size > 1_800_000_000
    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=False, save_as_external_data=big)
    except AssertionError:  # symbolic shape inference gives up on some Reshapes (the head's); ONNX's own suffices
        log.info("%s: symbolic shape inference failed, using ONNX shape inference only", src.name)
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True, save_as_external_data=big)


def calibrate_ranges(pre: Path, reader: Any, settings: QuantSettings, cache: Path, workdir: Path) -> None:
    """Activation ranges of every tensor around the ``settings.ops`` nodes of ``pre``, saved to ``cache``.

    Run here rather than inside ``quantize_static`` for three measured reasons (onnxruntime
    1.32): its Entropy calibrator keeps 128 histogram bins for 128 quantised bins, so it
    can only ever pick the full range (it gives MinMax's scales); its Percentile
    calibrator symmetrises ranges, which halves the resolution of uint8 activations after
    a ReLU; and its ``CalibMaxIntermediateOutputs`` drops the batches it flushes. Feeds go
    to the calibrator :data:`CALIBRATION_CHUNK` at a time (histograms merge across
    chunks), so memory does not grow with the number of frames. The same ranges then
    serve every Q/DQ graph of the component (the TensorRT one included).
    """
    from onnxruntime.quantization import CalibrationMethod, create_calibrator, save_tensors_data

    from tr2m_edge.calib.data import FeedReader

    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[settings.method]
    options = {"entropy": {"num_bins": 2048, "num_quantized_bins": 128},
               "percentile": {"num_bins": 2048, "percentile": 99.999, "symmetric": False}}.get(settings.method, {})
    with _root_log_level(logging.ERROR):
        calibrator = create_calibrator(pre, list(settings.ops), augmented_model_path=str(workdir / "augmented.onnx"),
                                       calibrate_method=method, extra_options=options)
        feeds = list(reader.feeds)
        for start in range(0, len(feeds), CALIBRATION_CHUNK):
            calibrator.collect_data(FeedReader(reader.component, feeds[start:start + CALIBRATION_CHUNK]))
        save_tensors_data(calibrator.compute_data(), cache)


def quantize_graph(src: str | Path, dst: str | Path, reader: Any, settings: QuantSettings,
                   workdir: str | Path | None = None, ranges: Path | None = None) -> dict[str, Any]:
    """Write the INT8 Q/DQ graph of ``src`` to ``dst``.

    Args:
        src: the fp32 ONNX graph.
        dst: where to write the Q/DQ graph.
        reader: a :class:`~tr2m_edge.calib.data.FeedReader` (the component's calibration feeds).
        settings: op types, calibration method, per-channel weights, activation symmetry.
        workdir: scratch folder (pre-processed graph, ONNX Runtime's augmented model).
        ranges: where the activation ranges are kept: reused when the file exists (same
            component, method and op types), else computed and written there.

    Returns:
        Counts for the manifest: ``nodes`` of the pre-processed graph, ``quantized`` nodes
        by op type, what stayed float and why, the calibration ``frames``.

    Raises:
        CalibrationError: the quantiser failed.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    src, dst = Path(src), Path(dst)
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    with tempfile.TemporaryDirectory(prefix="tr2m-calib-", dir=workdir) as tmp:
        pre = Path(tmp) / f"{src.stem}.pre.onnx"
        cache = ranges or Path(tmp) / f"{src.stem}.ranges.json"
        try:
            preprocess_graph(src, pre)
            model = onnx.load(str(pre))
            name_nodes(model.graph)
            onnx.save(model, str(pre), save_as_external_data=pre.stat().st_size > 1_800_000_000)
            nodes, kept = select_nodes(model.graph, settings.ops, OUTPUT_FLOAT_LAYERS.get(reader.component, 1))
            if not nodes:
                raise CalibrationError(f"{src.name} has no {'/'.join(settings.ops)} nodes to quantise; "
                                       "choose other op types with --ops.")
            if not cache.is_file():
                calibrate_ranges(pre, reader, settings, cache, Path(tmp))
            extra = {"ActivationSymmetric": settings.symmetric, "WeightSymmetric": True,
                     "OpTypesToExcludeOutputQuantization": [op for op in FLOAT_OUTPUT_OPS if op in settings.ops]}
            with _root_log_level(logging.ERROR):  # the quantiser warns on the root logger (and prints)
                quantize_static(
                    str(pre), str(dst), None, quant_format=QuantFormat.QDQ, op_types_to_quantize=list(settings.ops),
                    nodes_to_quantize=nodes, per_channel=settings.per_channel, reduce_range=settings.reduce_range,
                    activation_type=QuantType.QInt8 if settings.symmetric else QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=methods[settings.method], extra_options=extra,
                    calibration_cache_path=cache,
                )
        except CalibrationError:
            raise
        except Exception as exc:  # noqa: BLE001 - the quantiser raises many unrelated types
            dst.unlink(missing_ok=True)
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise CalibrationError(f"INT8 quantisation of {src.name} failed: {type(exc).__name__}: {first}") from exc
    by_type = Counter(n.op_type for n in model.graph.node if n.name in set(nodes))
    log.info("%s: %d of %d nodes quantised (%s)", dst.name, len(nodes), len(model.graph.node), dict(by_type))
    return {"nodes": len(model.graph.node), "quantized": dict(sorted(by_type.items())), "float": kept,
            "frames": len(reader)}
