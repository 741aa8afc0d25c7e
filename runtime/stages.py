"""The per-frame work as stages over any runner set that speaks the contract's names.

:class:`FrameStages` is what every execution plan calls: each method is one stage that
takes and returns dicts of named arrays, so the same code runs ONNX Runtime, TensorRT and
PyTorch runners. :meth:`FrameStages.run_frame` is the serial order of the stages, written
once (the serial plan, the host frame plan and the parity comparator all use it), and
:func:`caption_bias` the per-caption order (text encoder, then scene bias).
:class:`CaptionState` holds the active caption's scene bias; the head stage reads it per
frame, so a caption switch applies from the next frame on.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from tr2m_edge.config import ModelConfig
from tr2m_edge.contract import BIAS, DEPTH, FRAME, FRAME_HW, IMAGE, RELATIVE, SCALE, SHIFT, TEXT_EMBEDDING, TOKEN_IDS
from tr2m_edge.contract import TOKENS, check_names
from tr2m_edge.errors import InputError
from tr2m_edge.preprocess import clip_depth
from tr2m_edge.runtime.frames import Frame
from tr2m_edge.runtime.results import MetricDepth
from tr2m_edge.runtime.runners.base import Runner

BiasFn = Callable[[str], np.ndarray]  # caption -> (1, C) float32 scene bias
Record = dict[str, tuple[dict[str, Any], dict[str, Any]]]  # component -> (feed, outputs)


class CaptionState:
    """The active caption and its (1, C) float32 scene bias; swapped atomically.

    With :attr:`follow_frames` on, a frame that carries its own caption (synthetic scenes:
    ``Frame.caption``) is run with that caption instead: its bias comes from ``bias_fn``
    once per new caption and is kept in a small LRU cache. :meth:`set` (an explicit
    caption: ``--text``, a caption switch) turns following off.

    Args:
        bias_fn: caption -> (1, C) bias, used for frame captions.
        cache_size: frame captions whose biases are kept.
    """

    def __init__(self, bias_fn: BiasFn | None = None, cache_size: int = 256) -> None:
        self._lock = threading.Lock()
        self.caption = ""
        self.bias: np.ndarray | None = None
        self.version = 0
        self.follow_frames = False
        self._bias_fn = bias_fn
        self._frame_biases: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = max(1, int(cache_size))
        self.frame_bias_calls = 0  # bias_fn calls made for frame captions (one per new caption)

    def set(self, caption: str, bias: np.ndarray) -> None:
        bias = np.ascontiguousarray(np.asarray(bias, dtype=np.float32).reshape(1, -1))
        with self._lock:
            self.caption, self.bias = caption, bias
            self.version += 1
            self.follow_frames = False

    def get(self, frame_caption: str | None = None) -> tuple[str, np.ndarray]:
        """(caption, bias) for a frame: its own caption when following frames, else the active one."""
        if self.follow_frames and frame_caption and self._bias_fn is not None:
            return frame_caption, self._frame_bias(frame_caption)
        with self._lock:
            if self.bias is None:
                raise InputError("No scene caption set: call set_scene('...') (CLI: --text) before the first frame.")
            return self.caption, self.bias

    def _frame_bias(self, caption: str) -> np.ndarray:
        with self._lock:
            bias = self._frame_biases.get(caption)
            if bias is not None:
                self._frame_biases.move_to_end(caption)
                return bias
        bias = np.ascontiguousarray(np.asarray(self._bias_fn(caption), dtype=np.float32).reshape(1, -1))
        with self._lock:
            self.frame_bias_calls += 1
            self._frame_biases[caption] = bias
            while len(self._frame_biases) > self._cache_size:
                self._frame_biases.popitem(last=False)
        return bias


def _call(runner: Runner, component: str, feed: dict[str, Any], timings: dict[str, float] | None,
          record: Record | None) -> dict[str, Any]:
    start = time.perf_counter()
    out = runner.infer(feed)
    if timings is not None:
        timings[component] = (time.perf_counter() - start) * 1e3
    if record is not None:
        record[component] = (feed, out)
    return out


def caption_bias(runners: Mapping[str, Runner], token_ids: np.ndarray, record: Record | None = None) -> np.ndarray:
    """Token ids (B, 77) int64 -> scene biases (B, C) through the text_encoder and scene_bias runners."""
    text = _call(runners["text_encoder"], "text_encoder", {TOKEN_IDS: token_ids}, None, record)[TEXT_EMBEDDING]
    feed = {TEXT_EMBEDDING: np.asarray(text, dtype=np.float32)}
    return _call(runners["scene_bias"], "scene_bias", feed, None, record)[BIAS]


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
        checks = {
            "preprocess": ([FRAME], [IMAGE]),
            "depth": ([IMAGE], [RELATIVE] + ([] if self.has_image_encoder else [TOKENS])),
            "head": ([TOKENS, RELATIVE, BIAS], [DEPTH]),
        }
        if self.has_image_encoder:
            checks["image_encoder"] = ([IMAGE], [TOKENS])
        for comp, (ins, outs) in checks.items():
            runner = self.runners.get(comp)
            if runner is None:
                check_names(comp, "no runner", [], ins, self.where)
                continue
            check_names(comp, "inputs", list(runner.get_input_metadata()), ins, self.where)
            check_names(comp, "outputs", list(runner.get_output_metadata()), outs, self.where)
        self.needs_frame_hw = FRAME_HW in self.runners["head"].get_input_metadata()

    # ------------------------------------------------------------------ stages
    def preprocess(self, rgb: np.ndarray, timings: dict[str, float] | None = None,
                   record: Record | None = None) -> dict[str, Any]:
        """(H, W, 3) uint8 -> {"image": (1, 3, h, w)}."""
        return _call(self.runners["preprocess"], "preprocess", {FRAME: rgb}, timings, record)

    def depth(self, pre: Mapping[str, Any], timings: dict[str, float] | None = None,
              record: Record | None = None) -> dict[str, Any]:
        """{"image"} -> {"relative_depth" (1,1,h,w) [, "image_tokens"]}."""
        return _call(self.runners["depth"], "depth", {IMAGE: pre[IMAGE]}, timings, record)

    def image(self, pre: Mapping[str, Any], timings: dict[str, float] | None = None,
              record: Record | None = None) -> dict[str, Any]:
        """{"image"} -> {"image_tokens" (1, N, C)}; empty when the backbone is shared."""
        if not self.has_image_encoder:
            return {}
        return _call(self.runners["image_encoder"], "image_encoder", {IMAGE: pre[IMAGE]}, timings, record)

    def head(self, dep: Mapping[str, Any], img: Mapping[str, Any], bias: np.ndarray, frame_hw: tuple[int, int],
             timings: dict[str, float] | None = None, record: Record | None = None) -> dict[str, Any]:
        """Encoder outputs + scene bias -> {"depth" (1,1,H,W) m, "scale", "shift"}."""
        tokens = img[TOKENS] if self.has_image_encoder else dep[TOKENS]
        feed: dict[str, Any] = {TOKENS: tokens, RELATIVE: dep[RELATIVE], BIAS: bias}
        if self.needs_frame_hw:
            feed[FRAME_HW] = np.asarray(frame_hw, dtype=np.int64)
        return _call(self.runners["head"], "head", feed, timings, record)

    def run_frame(self, rgb: np.ndarray | None, bias: np.ndarray, frame_hw: tuple[int, int], *,
                  image: Any = None, timings: dict[str, float] | None = None,
                  record: Record | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The stages in their serial order: preprocess -> depth -> image encoder -> head.

        Args:
            rgb: the (H, W, 3) uint8 frame (unused when ``image`` is given).
            bias: the (1, C) scene bias.
            frame_hw: the frame's (H, W), for heads that take ``frame_hw``.
            image: start from this network input instead of preprocessing ``rgb``.
            timings: filled with milliseconds per stage.
            record: filled with each component's feed and outputs (the parity comparator).

        Returns:
            (head outputs, depth outputs).
        """
        pre = {IMAGE: image} if image is not None else self.preprocess(rgb, timings, record)  # type: ignore[arg-type]
        dep = self.depth(pre, timings, record)
        img = self.image(pre, timings, record)
        return self.head(dep, img, bias, frame_hw, timings, record), dep

    def finish(self, frame: Frame, out: Mapping[str, Any], dep: Mapping[str, Any], caption: str,
               keep_maps: bool) -> MetricDepth:
        """Postprocess: package one :class:`MetricDepth`.

        The head graph clips its own output; the same rule is applied here again (a no-op
        for graphs that clip), so a backend that returns NaN/inf or out-of-range values
        (a graph without the clip, a broken engine) still yields valid metres. ``nonfinite``
        counts the NaN/inf values the backend returned.
        """
        depth = np.asarray(host_array(out[DEPTH]), dtype=np.float32).reshape(frame.rgb.shape[:2])
        depth, bad = clip_depth(depth, self.min_depth, self.max_depth)
        result = MetricDepth(
            depth=depth.astype(np.float32, copy=False), index=frame.index, timestamp=frame.timestamp,
            caption=caption, nonfinite=bad, rgb=frame.rgb, depth_gt=frame.depth_gt,
        )
        if keep_maps:
            result.scale = np.asarray(host_array(out[SCALE]), dtype=np.float32)[0, 0]
            result.shift = np.asarray(host_array(out[SHIFT]), dtype=np.float32)[0, 0]
            result.relative = np.asarray(host_array(dep[RELATIVE]), dtype=np.float32)[0, 0]
        return result


def host_array(value: Any) -> Any:
    """Device arrays (OrtValue, torch tensors) -> numpy."""
    if isinstance(value, np.ndarray):
        return value
    if type(value).__module__.startswith("torch"):
        return value.detach().float().cpu().numpy()
    if hasattr(value, "numpy"):
        return value.numpy()
    return value
