"""The device plan's frame work over runners that compute off the host thread (TensorRT,
ONNX Runtime on CUDA): every graph of a frame is issued at once, nothing waits on the host.

Each runner computes on its own worker thread (:meth:`Runner.issue`; a TensorRT runner also
on its own CUDA stream), so preprocess, then depth and image encoder concurrently, then
the head are queued for frame N while frame N-1 still computes; dependencies between the
graphs are pending outputs resolved in the workers. Declared by ``frame_plan = "async"``
(TrtRunner; OrtRunner on GPU providers). The same code runs on CPU runners for the tests.
"""

from __future__ import annotations

import numpy as np

from tr2m_edge.contract import BIAS, FRAME, FRAME_HW, IMAGE, RELATIVE, TOKENS
from tr2m_edge.runtime.plans.frame import FrameOutputs, FramePlan, InFlight
from tr2m_edge.runtime.runners.base import Issued
from tr2m_edge.runtime.stages import FrameStages


class AsyncFramePlan(FramePlan):
    """Issues preprocess, depth + image encoder (concurrently) and head of a frame, returns at once."""

    asynchronous = True

    def __init__(self, stages: FrameStages) -> None:
        self.stages = stages

    def submit(self, rgb: np.ndarray, bias: np.ndarray, frame_hw: tuple[int, int], keep_maps: bool) -> InFlight:
        st, runners = self.stages, self.stages.runners
        pre = runners["preprocess"].issue({FRAME: rgb})
        dep = runners["depth"].issue({IMAGE: pre.output(IMAGE)})
        img = runners["image_encoder"].issue({IMAGE: pre.output(IMAGE)}) if st.has_image_encoder else None
        feed = {TOKENS: (img or dep).output(TOKENS), RELATIVE: dep.output(RELATIVE), BIAS: bias}
        if st.needs_frame_hw:
            feed[FRAME_HW] = np.asarray(frame_hw, dtype=np.int64)
        head = runners["head"].issue(feed)
        return _Flight(pre, dep, img, head, keep_maps)


class _Flight(InFlight):
    def __init__(self, pre: Issued, dep: Issued, img: Issued | None, head: Issued, keep_maps: bool) -> None:
        self.pre, self.dep, self.img, self.head, self.keep_maps = pre, dep, img, head, keep_maps

    def wait(self) -> FrameOutputs:
        out = self.head.wait()
        dep = self.dep.wait()
        ms = {"preprocess": self.pre.ms, "depth": self.dep.ms, "head": self.head.ms}
        if self.img is not None:
            ms["image_encoder"] = self.img.ms
        return FrameOutputs(out, {RELATIVE: dep[RELATIVE]} if self.keep_maps else {}, ms)
