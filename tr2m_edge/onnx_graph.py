"""Walks over ONNX graphs shared by the FP16 converter (export) and the INT8 quantiser (calib).

Both keep the same part of a graph in float: the fragile op types and, in the head, every
node from the ``Exp`` nodes on (A = 0.01 exp(s), B = 0.01 exp(t), ``1 / (A D_r + B)``,
the resize to frame size and the clip). Imports onnx only (no PyTorch).
"""

from __future__ import annotations

import onnx


def name_nodes(graph: onnx.GraphProto) -> None:
    """Give every unnamed node a unique name (``<OpType>_<index>``), so nodes can be listed by name."""
    used = {n.name for n in graph.node if n.name}
    for i, node in enumerate(graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


def tail_after(graph: onnx.GraphProto, op_type: str) -> list[str]:
    """Names of the ``op_type`` nodes and of every node downstream of one of them."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    seen: set[str] = set()
    stack = [n for n in graph.node if n.op_type == op_type]
    while stack:
        node = stack.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        for out in node.output:
            stack.extend(consumers.get(out, ()))
    return sorted(seen)
