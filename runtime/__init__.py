"""Pipelined inference on TensorRT, ONNX Runtime or PyTorch. Imports no PyTorch unless asked.

Public API (imported lazily, so ``import tr2m_edge.runtime`` stays light)::

    DepthPipeline, MetricDepth            the Python API (from_bundle / set_scene / infer / stream)
    Executor, Mode                        pipelined / serial executor
    OrtRunner, TrtRunner, TorchRunner     backends behind one runner interface
    CameraSource, VideoSource, ImageSource, RtspSource, SyntheticSource, ArraySource
    DisplaySink, VideoSink, DepthFileSink, StatsSink
    run_stream, run_bench, choose_backend, build_bundle (TensorRT engines on the target)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DepthPipeline": "pipeline", "MetricDepth": "results", "RunCounters": "results",
    "Executor": "executor", "Mode": "executor",
    "OrtRunner": "runners", "TrtRunner": "runners", "TorchRunner": "runners", "Runner": "runners",
    "TensorMeta": "runners",
    "CameraSource": "sources", "VideoSource": "sources", "ImageSource": "sources", "RtspSource": "sources",
    "SyntheticSource": "sources", "ArraySource": "sources", "FrameSource": "sources", "make_source": "sources",
    "DisplaySink": "sinks", "VideoSink": "sinks", "DepthFileSink": "sinks", "StatsSink": "sinks", "Sink": "sinks",
    "run_stream": "run", "RunSummary": "run", "run_bench": "bench", "BenchReport": "bench",
    "choose_backend": "backends", "BackendChoice": "backends", "resolve_device": "backends",
    "build_bundle": "build", "BuildResult": "build",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
