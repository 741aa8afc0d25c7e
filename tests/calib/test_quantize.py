"""What gets quantised: op types by name, the head's exp tail and the output layers stay float."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tr2m_edge.calib.data import FeedReader
from tr2m_edge.calib.quantize import DEFAULT_OPS, QuantSettings, output_layers, parse_ops, quantize_graph, select_nodes
from tr2m_edge.errors import CalibrationError, ConfigError
from tr2m_edge.onnx_graph import tail_after


def test_parse_ops_and_settings_validate_names():
    assert parse_ops(None) == DEFAULT_OPS
    assert parse_ops("conv, GEMM,conv") == ("Conv", "Gemm")
    with pytest.raises(ConfigError, match="Cannot quantise op type 'Attention'. Available: Conv, Gemm, MatMul"):
        parse_ops("Conv,Attention")
    with pytest.raises(ConfigError, match="Unknown calibration method 'kl'. Available: minmax, entropy, percentile"):
        QuantSettings(method="kl")
    described = QuantSettings().describe()
    assert described["format"] == "QDQ" and described["per_channel"] and "7-bit" in described["weights"]


def _chain_graph():
    """x -> Conv -> Relu -> Conv -> Relu -> Squeeze -> y (a depth model's last layers)."""
    w = numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "w")
    w2 = numpy_helper.from_array(np.ones((1, 2, 1, 1), np.float32), "w2")
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="conv1"), helper.make_node("Relu", ["a"], ["b"], name="r1"),
             helper.make_node("Conv", ["b", "w2"], ["c"], name="conv2"), helper.make_node("Relu", ["c"], ["d"], name="r2"),
             helper.make_node("Squeeze", ["d"], ["y"], name="sq")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])], [w, w2])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_the_layer_that_writes_a_graph_output_stays_float():
    graph = _chain_graph().graph
    assert output_layers(graph) == ["conv2"]
    assert output_layers(graph, 2) == ["conv1", "conv2"]
    chosen, kept = select_nodes(graph, ("Conv",))
    assert chosen == ["conv1"] and kept["output_layers"] == 1
    assert select_nodes(graph, ("Conv",), output_float=2)[0] == []


def test_the_depth_models_dpt_head_stays_float(fp16_bundle, tmp_path):
    from tr2m_edge.calib.quantize import OUTPUT_FLOAT_LAYERS, preprocess_graph

    pre = tmp_path / "depth.pre.onnx"
    preprocess_graph(fp16_bundle / "depth.onnx", pre)
    graph = onnx.load(str(pre)).graph
    assert output_layers(graph, OUTPUT_FLOAT_LAYERS["depth"]) == [f"/encoder/head/conv{i}/Conv" for i in (1, 2, 3)]
    chosen, _ = select_nodes(graph, DEFAULT_OPS, OUTPUT_FLOAT_LAYERS["depth"])
    assert any("/neck/" in n for n in chosen) and any("/backbone/" in n for n in chosen)


def test_head_tail_layernorm_and_softmax_stay_float(fp16_bundle, tmp_path):
    from tr2m_edge.calib.quantize import preprocess_graph

    pre = tmp_path / "head.pre.onnx"
    preprocess_graph(fp16_bundle / "head.onnx", pre)
    graph = onnx.load(str(pre)).graph
    chosen, kept = select_nodes(graph, DEFAULT_OPS)
    by_name = {n.name: n for n in graph.node}
    tail = set(tail_after(graph, "Exp"))
    assert {"Reciprocal", "Clip", "Resize"} <= {by_name[n].op_type for n in tail}
    assert chosen and not set(chosen) & tail
    assert {by_name[n].op_type for n in chosen} <= set(DEFAULT_OPS)
    exp_inputs = {n.input[0] for n in graph.node if n.op_type == "Exp"}
    last = [n for n in graph.node if set(n.output) & exp_inputs]  # the convs whose outputs are exponentiated
    assert last and not {n.name for n in last} & set(chosen)
    assert kept["LayerNormalization (kept float)"] >= 1 and kept["Softmax (kept float)"] >= 1
    with_softmax, _ = select_nodes(graph, DEFAULT_OPS + ("Softmax",))
    assert any(by_name[n].op_type == "Softmax" for n in with_softmax)  # named in --ops: quantised


def test_quantising_nothing_is_a_one_line_error(tmp_path):
    src = tmp_path / "chain.onnx"
    onnx.save(_chain_graph(), str(src))
    reader = FeedReader("head", [{"x": np.ones((1, 2, 4, 4), np.float32)}])  # head: only the last layer float
    with pytest.raises(CalibrationError, match="chain.onnx has no Gemm nodes to quantise; choose other op types"):
        quantize_graph(src, tmp_path / "out.onnx", reader, QuantSettings(ops=("Gemm",)))
    stats = quantize_graph(src, tmp_path / "out.onnx", reader, QuantSettings(ops=("Conv",)))
    assert stats["quantized"] == {"Conv": 1} and stats["frames"] == 1
    ops = {n.op_type for n in onnx.load(str(tmp_path / "out.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_profiler_times_every_op_type_and_compares_variants(fp16_bundle, tmp_path):
    from tr2m_edge.bundle import open_bundle
    from tr2m_edge.calib.profile import compare_op_choices, op_type_profile

    src = tmp_path / "chain.onnx"
    onnx.save(_chain_graph(), str(src))
    profile = op_type_profile(src, {"x": np.ones((1, 2, 4, 4), np.float32)}, repeats=2, threads=1)
    assert "Squeeze" in profile and {"Conv", "FusedConv"} & set(profile)  # op types after ONNX Runtime's fusions
    assert all(ms >= 0 for ms in profile.values())
    result = compare_op_choices(open_bundle(fp16_bundle), "image_encoder", [("Gemm", "MatMul")], frames=2,
                                repeats=1, threads=1)
    fp32, int8 = result["variants"]["fp32"], result["variants"]["Gemm,MatMul"]
    assert fp32["speedup"] == 1.0 and fp32["mean_rel_error"] == 0.0
    assert 0 < int8["mean_rel_error"] < 0.5 and int8["median_ms"] > 0 and int8["quantized"]["Gemm"] > 0
    assert any(op.startswith(("QGemm", "MatMulInteger", "QLinear")) for op in int8["profile_ms"])
