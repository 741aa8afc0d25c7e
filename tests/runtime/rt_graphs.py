"""Small real ONNX graphs for runner and executor tests (built with onnx.helper, no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def affine_graph(path: Path, shape: tuple = (1, 3, 4, 4), scale: float = 2.0, shift: float = 1.0) -> Path:
    """y = x * scale + shift, plus z = ReduceSum(x) (float32); dims given as str are dynamic."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])
    inits = [numpy_helper.from_array(np.array(scale, np.float32), "scale"),
             numpy_helper.from_array(np.array(shift, np.float32), "shift")]
    nodes = [
        helper.make_node("Mul", ["x", "scale"], ["xs"]),
        helper.make_node("Add", ["xs", "shift"], ["y"]),
        helper.make_node("ReduceSum", ["x"], ["zs"], keepdims=0),
        helper.make_node("Reshape", ["zs", "one"], ["z"]),
    ]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "one"))
    graph = helper.make_graph(nodes, "affine", [x], [y, z], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def frame_graph(path: Path) -> Path:
    """frame uint8 (H, W, 3), dynamic H/W -> image float32 (1, 3, H, W) = frame / 255."""
    frame = helper.make_tensor_value_info("frame", TensorProto.UINT8, ["H", "W", 3])
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "H", "W"])
    inits = [numpy_helper.from_array(np.array(1 / 255, np.float32), "k"),
             numpy_helper.from_array(np.array([0], np.int64), "axis0")]
    nodes = [
        helper.make_node("Cast", ["frame"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["f", "k"], ["fk"]),
        helper.make_node("Transpose", ["fk"], ["chw"], perm=[2, 0, 1]),
        helper.make_node("Unsqueeze", ["chw", "axis0"], ["image"]),
    ]
    graph = helper.make_graph(nodes, "frame", [frame], [image], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _save(nodes, name, inputs, outputs, inits, path: Path) -> Path:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def nonfinite_graphs(folder: Path, size: tuple[int, int], channels: int = 4) -> dict[str, Path]:
    """Contract-named graphs whose metric depth is ``1 / sqrt(frame[..., 0] - 100)``.

    The network input size equals the frame size (no resize), so a red value of 100
    gives +inf and values below 100 give NaN: real ORT graphs that produce non-finite
    depth for the executor's clamp to handle. Tokens have ``channels`` channels.
    """
    h, w = size
    f = TensorProto.FLOAT
    paths = {}
    paths["preprocess"] = _save(
        [helper.make_node("Cast", ["frame"], ["f"], to=f), helper.make_node("Sub", ["f", "c100"], ["g"]),
         helper.make_node("Transpose", ["g"], ["chw"], perm=[2, 0, 1]),
         helper.make_node("Unsqueeze", ["chw", "axis0"], ["image"])],
        "preprocess", [helper.make_tensor_value_info("frame", TensorProto.UINT8, [h, w, 3])],
        [helper.make_tensor_value_info("image", f, [1, 3, h, w])],
        [numpy_helper.from_array(np.array(100, np.float32), "c100"), numpy_helper.from_array(np.array([0], np.int64), "axis0")],
        folder / "preprocess.onnx")
    paths["depth"] = _save(
        [helper.make_node("Slice", ["image", "s0", "s1", "ax"], ["relative_depth"])],
        "depth", [helper.make_tensor_value_info("image", f, [1, 3, h, w])],
        [helper.make_tensor_value_info("relative_depth", f, [1, 1, h, w])],
        [numpy_helper.from_array(np.array([0], np.int64), "s0"), numpy_helper.from_array(np.array([1], np.int64), "s1"),
         numpy_helper.from_array(np.array([1], np.int64), "ax")],
        folder / "depth.onnx")
    paths["image_encoder"] = _save(
        [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2, 3], keepdims=0),
         helper.make_node("Reshape", ["m", "shape"], ["m1"]),
         helper.make_node("Tile", ["m1", "reps"], ["image_tokens"])],
        "image_encoder", [helper.make_tensor_value_info("image", f, [1, 3, h, w])],
        [helper.make_tensor_value_info("image_tokens", f, [1, 1, channels])],
        [numpy_helper.from_array(np.array([1, 1, 1], np.int64), "shape"),
         numpy_helper.from_array(np.array([1, 1, channels], np.int64), "reps")],
        folder / "image_encoder.onnx")
    paths["head"] = _save(
        [helper.make_node("Sqrt", ["relative_depth"], ["r"]), helper.make_node("Reciprocal", ["r"], ["depth"]),
         helper.make_node("Identity", ["relative_depth"], ["scale"]), helper.make_node("Identity", ["relative_depth"], ["shift"]),
         helper.make_node("ReduceSum", ["image_tokens"], ["t"], keepdims=1),
         helper.make_node("ReduceSum", ["scene_bias"], ["b"], keepdims=1),
         helper.make_node("Add", ["t", "b"], ["unused_sum"])],
        "head",
        [helper.make_tensor_value_info("image_tokens", f, [1, 1, channels]),
         helper.make_tensor_value_info("relative_depth", f, [1, 1, h, w]),
         helper.make_tensor_value_info("scene_bias", f, [1, channels])],
        [helper.make_tensor_value_info("depth", f, [1, 1, h, w]), helper.make_tensor_value_info("scale", f, [1, 1, h, w]),
         helper.make_tensor_value_info("shift", f, [1, 1, h, w]), helper.make_tensor_value_info("unused_sum", f, [1, 1, 1])],
        [], folder / "head.onnx")
    return paths
