"""FP16 conversion: fragile ops stay fp32, I/O stays fp32, the graph stays valid."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from tr2m_edge.errors import ExportError
from tr2m_edge.export.fp16 import convert_to_fp16, tail_after, topological_sort


def _types(model):
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in
             list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    types.update({t.name: t.data_type for t in inferred.graph.initializer})
    return inferred, types


def test_fragile_ops_and_the_head_tail_stay_fp32(fp16_bundle):
    head, types = _types(onnx.load(str(fp16_bundle / "head.fp16.onnx")))
    fragile = [n for n in head.graph.node if n.op_type in ("LayerNormalization", "Softmax", "Exp")]
    assert {n.op_type for n in fragile} == {"LayerNormalization", "Softmax", "Exp"}
    for node in fragile:
        assert types[node.input[0]] == TensorProto.FLOAT, (node.op_type, node.name)
    tail = set(tail_after(head.graph, "Exp"))  # A, B, 1 / (A D_r + B), resize, clip
    tail_nodes = [n for n in head.graph.node if n.name in tail]
    assert {"Reciprocal", "Resize", "IsNaN", "Clip"} <= {n.op_type for n in tail_nodes}
    for n in tail_nodes:
        assert all(types.get(o) in (TensorProto.FLOAT, TensorProto.BOOL, TensorProto.INT64, None) for o in n.output), n.name
    assert all(v.type.tensor_type.elem_type == TensorProto.FLOAT for v in list(head.graph.input)[:3])
    assert all(v.type.tensor_type.elem_type == TensorProto.FLOAT for v in head.graph.output)
    fp16_weights = [t for t in head.graph.initializer if t.data_type == TensorProto.FLOAT16]
    assert len(fp16_weights) > 10  # the convolutions really are fp16
    depth, dtypes = _types(onnx.load(str(fp16_bundle / "depth.fp16.onnx")))
    norms = [n for n in depth.graph.node if n.op_type == "LayerNormalization"]
    assert norms and all(dtypes[n.input[0]] == TensorProto.FLOAT for n in norms)  # opset 17: one op each
    assert not any(n.op_type == "Pow" for n in depth.graph.node)


def test_fp16_files_are_smaller_and_pass_the_checker(fp16_bundle):
    for comp in ("depth", "image_encoder", "head"):
        onnx.checker.check_model(str(fp16_bundle / f"{comp}.fp16.onnx"))
        assert (fp16_bundle / f"{comp}.fp16.onnx").stat().st_size < 0.8 * (fp16_bundle / f"{comp}.onnx").stat().st_size


def test_topological_sort_repairs_appended_nodes():
    a = helper.make_node("Relu", ["x"], ["a"], name="a")
    b = helper.make_node("Neg", ["a"], ["y"], name="b")
    graph = helper.make_graph([b, a], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    topological_sort(graph)
    assert [n.name for n in graph.node] == ["a", "b"]
    onnx.checker.check_model(helper.make_model(graph))
    broken = helper.make_graph([helper.make_node("Neg", ["nowhere"], ["y"], name="c")], "g2", [],
                               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    with pytest.raises(ExportError, match="never produced: \\['nowhere'\\]"):
        topological_sort(broken)


def test_conversion_failure_is_an_export_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(ExportError, match="FP16 conversion of bad.onnx failed: "):
        convert_to_fp16(bad, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()
