"""Calibration feeds: every component's inputs, recorded from the bundle's own FP32 graphs.

The frames run through the runtime's stages (:meth:`FrameStages.run_frame` with
``record=``) on the bundle's fp32 ONNX Runtime runners, starting at its preprocess graph,
so each component is calibrated on exactly the tensors it sees at run time: the depth
model and the image encoder on preprocessed frames, the head on the fp32 encoders'
outputs and the scene bias of a caption.

:class:`FeedReader` wraps one component's recorded feeds as an
``onnxruntime.quantization.CalibrationDataReader``. The same recorded feeds serve
TensorRT: its INT8 engines are built from the Q/DQ graphs (explicit quantisation), whose
scales the ONNX Runtime calibrator computed from this reader, so TensorRT needs no
calibrator of its own (TensorRT 10 deprecates implicit-quantisation calibrators; TensorRT
11 has none).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from tr2m_edge.config import ModelConfig
from tr2m_edge.contract import FRAME_COMPONENTS
from tr2m_edge.runtime.runners.base import Runner
from tr2m_edge.runtime.stages import FrameStages, Record, host_array

log = logging.getLogger(__name__)
Feed = dict[str, np.ndarray]


class FeedReader(CalibrationDataReader):
    """One component's recorded feeds, handed out one at a time (then ``None``).

    Args:
        component: the component the feeds belong to (for messages).
        feeds: one dict of input name -> array per calibration frame.
    """

    def __init__(self, component: str, feeds: Sequence[Feed]) -> None:
        self.component = component
        self.feeds = list(feeds)
        self._pos = 0

    def get_next(self) -> Feed | None:
        if self._pos >= len(self.feeds):
            return None
        self._pos += 1
        return self.feeds[self._pos - 1]

    def rewind(self) -> None:
        self._pos = 0

    def __len__(self) -> int:
        return len(self.feeds)


def frame_stages(runners: Mapping[str, Runner], cfg: ModelConfig, frame_size: tuple[int, int] | None,
                 where: str) -> FrameStages:
    """Activated stages over the per-frame runners of ``runners`` (the caption runners are left out)."""
    return FrameStages({c: r for c, r in runners.items() if c in FRAME_COMPONENTS}, cfg, frame_size, where).activate()


def record_feeds(stages: FrameStages, frames: Sequence[np.ndarray], biases: Sequence[np.ndarray],
                 components: Sequence[str], on_frame: Callable[[int], None] | None = None) -> dict[str, list[Feed]]:
    """Run ``frames`` through ``stages`` and keep the feeds of ``components``.

    Args:
        stages: activated fp32 stages of the bundle.
        frames: (H, W, 3) uint8 RGB frames.
        biases: one (1, C) scene bias per frame.
        components: the components whose inputs are kept (``depth``, ``image_encoder``, ``head``).
        on_frame: called with the frame index after each frame (progress).

    Returns:
        component -> one feed (input name -> host array) per frame.
    """
    feeds: dict[str, list[Feed]] = {c: [] for c in components}
    for i, (frame, bias) in enumerate(zip(frames, biases)):
        record: Record = {}
        stages.run_frame(frame, bias, (int(frame.shape[0]), int(frame.shape[1])), record=record)
        for comp in components:
            if comp in record:
                feed, _ = record[comp]
                feeds[comp].append({k: np.array(host_array(v)) for k, v in feed.items()})
        if on_frame is not None:
            on_frame(i)
    return feeds


def feed_bytes(feeds: Mapping[str, Sequence[Mapping[str, Any]]]) -> int:
    """Host memory held by recorded feeds (for the log)."""
    return sum(int(np.asarray(v).nbytes) for rows in feeds.values() for feed in rows for v in feed.values())
