"""FP16 variants of the exported graphs, with fp32 I/O and the fragile ops kept in fp32.

Uses ``onnxruntime.transformers.float16.convert_float_to_float16``; measured trap:
onnxconverter-common's converter writes an unloadable model from the TorchScript-exported
Depth Anything graph (it removes a Cast that is still consumed), so it is not used.

Kept in fp32:

* ops whose fp16 form is numerically fragile: ``LayerNormalization``, ``Softmax``,
  ``Exp``, ``Reciprocal``, and the decomposed-LayerNorm ops (``Pow``, ``ReduceMean``,
  ``Sqrt``) should an old graph contain them;
* the head's whole tail after its ``Exp`` nodes: A = 0.01 exp(s), B = 0.01 exp(t),
  ``1 / (A D_r + B)``, the resize to frame size and the clip (values of A and B span
  many orders of magnitude; the reciprocal and the depth range need fp32).

Graph inputs and outputs stay fp32 (``keep_io_types``), so an fp16 file is a drop-in
replacement for its fp32 sibling. The converter's fp32 -> fp16 -> fp32 Cast pairs between
two kept-fp32 nodes are removed (:func:`remove_cast_round_trips`), so the kept parts really
compute in fp32.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnx

from tr2m_edge.errors import ExportError
from tr2m_edge.onnx_graph import name_nodes, tail_after

log = logging.getLogger(__name__)
__all__ = ["FP32_OPS", "convert_to_fp16", "remove_cast_round_trips", "tail_after", "topological_sort"]

FP32_OPS = ("LayerNormalization", "Softmax", "Exp", "Reciprocal", "Pow", "ReduceMean", "Sqrt")


def topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs.

    The float16 converter appends the fp32->fp16 casts of ``keep_io_types`` at the end of
    the node list; ONNX Runtime accepts that, the ONNX checker and TensorRT's parser do not.
    """
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        rest = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            missing = sorted({n for node in rest for n in node.input if n not in available})[:5]
            raise ExportError(f"Graph {graph.name} has nodes whose inputs are never produced: {missing}.")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def remove_cast_round_trips(model: onnx.ModelProto) -> int:
    """Bypass Cast(fp32 -> fp16) -> Cast(fp16 -> fp32) pairs; returns how many were removed.

    The float16 converter casts every output of a kept-fp32 node to fp16 and back again
    in front of each kept-fp32 consumer, so the fp32 tail would still round every value
    through fp16 (exp(s) > 65504 would even become inf). Consumers of the second Cast are
    rewired to the original fp32 value.
    """
    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in
             list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    types.update({t.name: t.data_type for t in graph.initializer})
    producer = {o: n for n in graph.node for o in n.output}
    outputs = {o.name for o in graph.output}

    def cast_to(node: onnx.NodeProto) -> int | None:
        if node.op_type != "Cast":
            return None
        return next((a.i for a in node.attribute if a.name == "to"), None)

    removed: set[str] = set()
    identities = 0
    for node in graph.node:
        first = producer.get(node.input[0]) if node.input else None
        if (cast_to(node) != onnx.TensorProto.FLOAT or first is None or cast_to(first) != onnx.TensorProto.FLOAT16
                or types.get(first.input[0]) != onnx.TensorProto.FLOAT):
            continue
        source, target = first.input[0], node.output[0]
        if target in outputs:  # a graph output keeps its name: the second Cast becomes Identity(source)
            node.op_type = "Identity"
            del node.attribute[:]
            node.input[0] = source
            identities += 1
            continue
        for other in graph.node:
            for i, name in enumerate(other.input):
                if name == target:
                    other.input[i] = source
        removed.add(node.name)
    still_used = {name for n in graph.node if n.name not in removed for name in n.input} | outputs
    dead = [n for n in graph.node if n.name in removed or (cast_to(n) == onnx.TensorProto.FLOAT16 and
                                                           n.output[0] not in still_used)]
    for n in dead:
        graph.node.remove(n)
    removed_count = len(removed) + identities
    return removed_count


def convert_to_fp16(src: str | Path, dst: str | Path, *, keep_tail_after_exp: bool = False) -> dict[str, int]:
    """Write an fp16 copy of ``src`` to ``dst``.

    Args:
        src: fp32 ONNX file.
        dst: where to write the fp16 file.
        keep_tail_after_exp: keep every node from the first ``Exp`` onwards in fp32 (the head).

    Returns:
        Counts for the manifest: ``nodes`` in the graph, ``fp32_nodes`` kept in fp32,
        ``cast_round_trips_removed``.
    """
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    src, dst = Path(src), Path(dst)
    try:
        model = onnx.load(str(src))
        name_nodes(model.graph)
        node_block = tail_after(model.graph, "Exp") if keep_tail_after_exp else []
        op_block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP32_OPS))
        kept = {n.name for n in model.graph.node if n.op_type in op_block} | set(node_block)
        fp16 = convert_float_to_float16(
            model, keep_io_types=True, op_block_list=op_block, node_block_list=node_block,
            disable_shape_infer=src.stat().st_size > 1_800_000_000,
        )
        topological_sort(fp16.graph)
        round_trips = remove_cast_round_trips(fp16) if src.stat().st_size < 1_800_000_000 else 0
        onnx.save(fp16, str(dst))
        onnx.checker.check_model(str(dst))
    except Exception as exc:  # noqa: BLE001 - loader/converter failures become one ExportError
        dst.unlink(missing_ok=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ExportError(f"FP16 conversion of {src.name} failed: {type(exc).__name__}: {first[:300]}") from exc
    log.debug("%s: %d nodes, %d kept in fp32", dst.name, len(model.graph.node), len(kept))
    return {"nodes": len(model.graph.node), "fp32_nodes": len(kept), "cast_round_trips_removed": round_trips}
