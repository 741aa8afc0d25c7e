"""Backends behind one runner interface: ONNX Runtime, TensorRT and PyTorch.

``TorchRunner`` is imported lazily (it imports PyTorch); the others import no heavy
library until a runner is activated.
"""

from __future__ import annotations

from typing import Any

from tr2m_edge.runtime.runners.base import Runner
from tr2m_edge.runtime.runners.onnxrt import OrtRunner
from tr2m_edge.runtime.runners.trt import TrtRunner

__all__ = ["OrtRunner", "Runner", "TorchRunner", "TrtRunner"]


def __getattr__(name: str) -> Any:
    if name == "TorchRunner":
        from tr2m_edge.runtime.runners.torch_runner import TorchRunner

        return TorchRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
