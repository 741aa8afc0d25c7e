"""The per-frame work split into stages, over any set of runners with the contract's names.

:class:`FrameStages` is what the executor's plans call: each method is one stage and
takes/returns dicts of named arrays, so the same code runs ONNX Runtime, TensorRT and
PyTorch runners. :class:`SceneState` holds the current caption's bias; the head stage
reads it per frame, so a caption switch applies from the next frame on.

:class:`FramePlan` is the device plan's unit of work: all of one frame's graphs issued
at once (:meth:`FramePlan.submit`), completed later (:meth:`InFlight.wait`), so the host
prepares the next frame while a GPU computes this one. :class:`HostFramePlan` runs the
stages one after the other (runners whose ``infer`` returns finished results: ONNX
Runtime, TensorRT); PyTorch runners get the asynchronous, two-stream
:class:`~tr2m_edge.runtime.runners.torch_runner.TorchFramePlan`.
"""

from __future__ import annotations

import abc
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from tr2m_edge.config import ModelConfig
from tr2m_edge.errors import InputError
from tr2m_edge.preprocess import clip_depth
from tr2m_edge.runtime import contract as C
from tr2m_edge.runtime.frames import Frame
from tr2m_edge.runtime.results import MetricDepth
from tr2m_edge.runtime.runners.base import Runner

SceneFn = Callable[[str], np.ndarray]


class SceneState:
    """The active scene: caption and its (1, C) float32 bias; swapped atomically."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.caption = ""
        self.bias: np.ndarray | None = None
        self.version = 0

    def set(self, caption: str, bias: np.ndarray) -> None:
        bias = np.ascontiguousarray(np.asarray(bias, dtype=np.float32).reshape(1, -1))
        with self._lock:
            self.caption, self.bias = caption, bias
            self.version += 1

    def get(self) -> tuple[str, np.ndarray]:
        with self._lock:
            if self.bias is None:
                raise InputError("No scene caption set: call set_scene('...') (CLI: --text) before the first frame.")
            return self.caption, self.bias


class FrameStages:
    """Preprocess, depth, image encoder, head and postprocess over named runners.

    Args:
        runners: ``preprocess``, ``depth``, ``head`` and (unless the backbone is shared)
            ``image_encoder``; activated by :meth:`activate`.
        config: the model config (depth range, input size).
        frame_size: the fixed (H, W) frame size of the graphs, or None when dynamic.
        where: a label for error messages (the bundle path).
    """

    def __init__(self, runners: Mapping[str, Runner], config: ModelConfig,
                 frame_size: tuple[int, int] | None, where: str = "bundle") -> None:
        self.runners = dict(runners)
        self.config = config
        self.frame_size = tuple(frame_size) if frame_size else None
        self.where = where
        self.has_image_encoder = "image_encoder" in self.runners
        self.needs_frame_hw = False
        self.min_depth, self.max_depth = config.min_depth, config.max_depth

    @property
    def device_kind(self) -> str:
        """``cuda`` when any runner computes on a GPU, else ``cpu`` (see :attr:`Runner.device_kind`)."""
        return "cuda" if any(r.device_kind == "cuda" for r in self.runners.values()) else "cpu"

    def frame_plan(self) -> "FramePlan":
        """A fresh :class:`FramePlan` over these (activated) runners for one run of the device plan."""
        torch_runner = sys.modules.get("tr2m_edge.runtime.runners.torch_runner")  # loaded iff torch runners exist
        if torch_runner is not None and all(isinstance(r, torch_runner.TorchRunner) for r in self.runners.values()):
            return torch_runner.TorchFramePlan(self)
        return HostFramePlan(self)

    # ------------------------------------------------------------------ lifecycle
    def activate(self) -> "FrameStages":
        for runner in self.runners.values():
            runner.activate()
        self._check_contract()
        return self

    def deactivate(self) -> None:
        for runner in self.runners.values():
            runner.deactivate()

    def _check_contract(self) -> None:
        need_tokens_from_depth = not self.has_image_encoder
        checks = {
            "preprocess": ([C.FRAME], [C.IMAGE]),
            "depth": ([C.IMAGE], [C.RELATIVE] + ([C.TOKENS] if need_tokens_from_depth else [])),
            "head": ([C.TOKENS, C.RELATIVE, C.BIAS], [C.DEPTH]),
        }
        if self.has_image_encoder:
            checks["image_encoder"] = ([C.IMAGE], [C.TOKENS])
        for comp, (ins, outs) in checks.items():
            runner = self.runners.get(comp)
            if runner is None:
                C.check_names(comp, "no runner", [], ins, self.where)
                continue
            C.check_names(comp, "inputs", list(runner.get_input_metadata()), ins, self.where)
            C.check_names(comp, "outputs", list(runner.get_output_metadata()), outs, self.where)
        self.needs_frame_hw = C.FRAME_HW in self.runners["head"].get_input_metadata()

    # ------------------------------------------------------------------ stages
    def preprocess(self, rgb: np.ndarray) -> dict[str, Any]:
        """(H, W, 3) uint8 -> {"image": (1, 3, h, w)}."""
        return self.runners["preprocess"].infer({C.FRAME: rgb})

    def depth(self, pre: Mapping[str, Any]) -> dict[str, Any]:
        """{"image"} -> {"relative_depth" (1,1,h,w) [, "image_tokens"]}."""
        return self.runners["depth"].infer({C.IMAGE: pre[C.IMAGE]})

    def image(self, pre: Mapping[str, Any]) -> dict[str, Any]:
        """{"image"} -> {"image_tokens" (1, N, C)}; empty when the backbone is shared."""
        if not self.has_image_encoder:
            return {}
        return self.runners["image_encoder"].infer({C.IMAGE: pre[C.IMAGE]})

    def head(self, dep: Mapping[str, Any], img: Mapping[str, Any], bias: np.ndarray,
             frame_hw: tuple[int, int]) -> dict[str, Any]:
        """Encoder outputs + scene bias -> {"depth" (1,1,H,W) m, "scale", "shift"}."""
        tokens = img[C.TOKENS] if self.has_image_encoder else dep[C.TOKENS]
        feed: dict[str, Any] = {C.TOKENS: tokens, C.RELATIVE: dep[C.RELATIVE], C.BIAS: bias}
        if self.needs_frame_hw:
            feed[C.FRAME_HW] = np.asarray(frame_hw, dtype=np.int64)
        return self.runners["head"].infer(feed)

    def finish(self, frame: Frame, out: Mapping[str, Any], dep: Mapping[str, Any], caption: str,
               keep_maps: bool) -> MetricDepth:
        """Postprocess: clamp NaN/inf (counted) and package one :class:`MetricDepth`."""
        depth = np.asarray(_host(out[C.DEPTH]), dtype=np.float32).reshape(frame.rgb.shape[:2])
        depth, bad = clip_depth(depth, self.min_depth, self.max_depth)
        result = MetricDepth(
            depth=depth.astype(np.float32, copy=False), index=frame.index, timestamp=frame.timestamp,
            caption=caption, nonfinite=bad, rgb=frame.rgb, depth_gt=frame.depth_gt,
        )
        if keep_maps:
            result.scale = np.asarray(_host(out[C.SCALE]), dtype=np.float32)[0, 0]
            result.shift = np.asarray(_host(out[C.SHIFT]), dtype=np.float32)[0, 0]
            result.relative = np.asarray(_host(dep[C.RELATIVE]), dtype=np.float32)[0, 0]
        return result


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


class _Done(InFlight):
    def __init__(self, outputs: FrameOutputs) -> None:
        self.outputs = outputs

    def wait(self) -> FrameOutputs:
        return self.outputs


class HostFramePlan(FramePlan):
    """Runs the stages one after the other inside :meth:`submit` (runners that finish in ``infer``)."""

    def __init__(self, stages: FrameStages) -> None:
        self.stages = stages

    def submit(self, rgb: np.ndarray, bias: np.ndarray, frame_hw: tuple[int, int], keep_maps: bool) -> InFlight:
        ms: dict[str, float] = {}

        def timed(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
            start = time.perf_counter()
            value = fn()
            ms[name] = (time.perf_counter() - start) * 1e3
            return value

        st = self.stages
        pre = timed("preprocess", lambda: st.preprocess(rgb))
        dep = timed("depth", lambda: st.depth(pre))
        img = timed("image_encoder", lambda: st.image(pre)) if st.has_image_encoder else {}
        out = timed("head", lambda: st.head(dep, img, bias, frame_hw))
        return _Done(FrameOutputs(out, dep, ms))


def _host(value: Any) -> Any:
    """Device arrays (OrtValue, torch tensors) -> numpy."""
    if isinstance(value, np.ndarray):
        return value
    if type(value).__module__.startswith("torch"):
        return value.detach().float().cpu().numpy()
    if hasattr(value, "numpy"):
        return value.numpy()
    return value
