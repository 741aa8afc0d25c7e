"""The device plan's unit of work: all graphs of one frame issued at once, completed later.

:meth:`FramePlan.submit` issues one frame (preprocess, depth, image encoder, head) and
returns an :class:`InFlight`; :meth:`InFlight.wait` blocks until its outputs are complete,
so the host prepares the next frame while a GPU computes this one. A runner class names
the frame plan it wants (:attr:`tr2m_edge.runtime.runners.base.Runner.frame_plan`):
:class:`HostFramePlan` for runners whose ``infer`` returns finished results (ONNX Runtime,
TensorRT), the asynchronous two-stream
:class:`~tr2m_edge.runtime.plans.torch_frame.TorchFramePlan` for PyTorch runners.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tr2m_edge.runtime.stages import FrameStages


@dataclass
class FrameOutputs:
    """One frame's graph outputs, complete and readable on the host.

    Attributes:
        out: head outputs: ``depth`` (1, 1, H, W) metres [, ``scale``, ``shift`` (1, 1, h, w)].
        dep: depth outputs: ``relative_depth`` (1, 1, h, w) [, ``image_tokens``].
        stage_ms: milliseconds per stage (device time on a GPU, host time otherwise).
    """

    out: dict[str, Any]
    dep: dict[str, Any]
    stage_ms: dict[str, float] = field(default_factory=dict)


class InFlight(abc.ABC):
    """A frame whose graph work has been issued; :meth:`wait` blocks until it is done."""

    @abc.abstractmethod
    def wait(self) -> FrameOutputs:
        """Block until the frame is computed and return its outputs (call once)."""


class FramePlan(abc.ABC):
    """Issues all graph work of one frame at once (preprocess, depth, image encoder, head).

    The device plan keeps at most :attr:`slots` frames in flight: it submits frame N,
    then waits for frame N-1. A plan is used by one thread at a time.
    """

    slots = 2
    asynchronous = False  # True when submit returns before the work is done (GPU launches)

    @abc.abstractmethod
    def submit(self, rgb: np.ndarray, bias: np.ndarray, frame_hw: tuple[int, int], keep_maps: bool) -> InFlight:
        """Issue one frame: ``rgb`` (H, W, 3) uint8, ``bias`` (1, C) float32; ``keep_maps`` also returns A, B, D_r."""

    def close(self) -> None:
        """Finish any in-flight work and release what the plan allocated."""


class Done(InFlight):
    """A frame that was complete when it was submitted."""

    def __init__(self, outputs: FrameOutputs) -> None:
        self.outputs = outputs

    def wait(self) -> FrameOutputs:
        return self.outputs


class HostFramePlan(FramePlan):
    """Runs the stages in their serial order inside :meth:`submit` (runners that finish in ``infer``)."""

    def __init__(self, stages: FrameStages) -> None:
        self.stages = stages

    def submit(self, rgb: np.ndarray, bias: np.ndarray, frame_hw: tuple[int, int], keep_maps: bool) -> InFlight:
        ms: dict[str, float] = {}
        out, dep = self.stages.run_frame(rgb, bias, frame_hw, timings=ms)
        return Done(FrameOutputs(out, dep, ms))
